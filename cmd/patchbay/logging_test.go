package main

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// probeLogs runs a command that logs as libraries do, through the app as
// main runs it (which owns the global loggers), and returns its stderr.
func probeLogs(t *testing.T, args ...string) (stderr string, a *app, err error) {
	t.Helper()
	prevDefault, prevOut, prevFlags := slog.Default(), log.Writer(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prevDefault)
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	})
	var errOut bytes.Buffer
	a = newApp(new(bytes.Buffer), &errOut)
	ownGlobalLog(a)
	root := a.rootCmd()
	root.AddCommand(&cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error {
		slog.Default().Warn("a library warns through slog", "k", 1)
		log.Print("[WARN] consul-template warns")
		log.Print("[INFO] consul-template chatters")
		log.Print("http: a library's plain line")
		return nil
	}})
	root.SetArgs(append(args, "probe"))
	err = root.Execute()
	return errOut.String(), a, err
}

// Every warning reaches the log, in the format asked for; chatter stays
// at debug.
func TestLogging(t *testing.T) {
	config := filepath.Join(t.TempDir(), "patchbay.yaml")
	if err := os.WriteFile(config, []byte("log-format: json\ntimeout: 4s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		json    bool
		want    []string // in the log
		notWant []string
		timeout time.Duration
	}{
		{name: "text by default", want: []string{"level=WARN msg=\"a library warns through slog\" k=1", "level=WARN msg=\"[WARN] consul-template warns\" from=consul-template", "level=INFO msg=\"http: a library's plain line\" from=log"}, notWant: []string{"chatters"}, timeout: 10 * time.Second},
		{name: "json flag", args: []string{"--log-format", "json"}, json: true, want: []string{`"level":"WARN","msg":"a library warns through slog","k":1`}},
		{name: "json from the environment", env: map[string]string{"PATCHBAY_LOG_FORMAT": "json"}, json: true, want: []string{`"msg":"[WARN] consul-template warns","from":"consul-template"`}},
		{name: "json and timeout from the config file", args: []string{"--config", config}, json: true, want: []string{`"msg":"http: a library's plain line","from":"log"`}, timeout: 4 * time.Second},
		{name: "environment over the config file", env: map[string]string{"PATCHBAY_LOG_FORMAT": "text", "PATCHBAY_TIMEOUT": "3s"}, args: []string{"--config", config}, want: []string{"level=WARN"}, timeout: 3 * time.Second},
		{name: "level from the environment", env: map[string]string{"PATCHBAY_LOG_LEVEL": "debug"}, want: []string{"level=DEBUG msg=\"[INFO] consul-template chatters\""}},
		{name: "flag over the environment", env: map[string]string{"PATCHBAY_LOG_LEVEL": "debug", "PATCHBAY_TIMEOUT": "3s"}, args: []string{"--log-level", "error", "--timeout", "5s"}, notWant: []string{"WARN", "INFO", "DEBUG"}, timeout: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"PATCHBAY_LOG_FORMAT", "PATCHBAY_LOG_LEVEL", "PATCHBAY_TIMEOUT", "PATCHBAY_CONFIG"} {
				t.Setenv(k, tt.env[k])
			}
			stderr, a, err := probeLogs(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("log lacks %s:\n%s", w, stderr)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(stderr, w) {
					t.Errorf("log has %s:\n%s", w, stderr)
				}
			}
			if tt.json {
				for line := range strings.Lines(stderr) {
					if !json.Valid([]byte(line)) {
						t.Errorf("not a JSON line: %s", line)
					}
				}
			}
			if tt.timeout != 0 && a.g.Timeout != tt.timeout {
				t.Errorf("timeout = %s, want %s", a.g.Timeout, tt.timeout)
			}
		})
	}
}

func TestTypedSettingErrors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PATCHBAY_TIMEOUT": "soon"}, `$PATCHBAY_TIMEOUT: timeout "soon" is not a duration; write it like "10s"`},
		{map[string]string{"PATCHBAY_LOG_LEVEL": "loud"}, `$PATCHBAY_LOG_LEVEL: log-level "loud" is no level`},
		{map[string]string{"PATCHBAY_LOG_FORMAT": "xml"}, `$PATCHBAY_LOG_FORMAT: log-format "xml" is no log format; give text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr := patchbay(t, "validate", "../../examples/services")
			if code != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant 1 and %q", code, stderr, tt.want)
			}
		})
	}
}

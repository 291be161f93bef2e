package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// patchbay runs one command line and returns its exit code and output.
func patchbay(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Settings resolve with precedence defaults < config file < environment < flags.
func TestGlobalsPrecedence(t *testing.T) {
	config := filepath.Join(t.TempDir(), "patchbay.yaml")
	if err := os.WriteFile(config, []byte("consul-addr: file:8500\nprefix: file/\nfederation: from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(globals) bool
	}{
		{"defaults", nil, nil, func(g globals) bool {
			return g.ConsulAddr == "127.0.0.1:8500" && g.Prefix == "patchbay/" && g.Federation == "default" && g.NATSURL == "nats://127.0.0.1:4222"
		}},
		{"file over defaults", nil, []string{"--config", config}, func(g globals) bool {
			return g.ConsulAddr == "file:8500" && g.Prefix == "file/" && g.Federation == "from-file" && g.NATSURL == "nats://127.0.0.1:4222"
		}},
		{"config file from environment", map[string]string{"PATCHBAY_CONFIG": config}, nil, func(g globals) bool {
			return g.ConsulAddr == "file:8500"
		}},
		{"environment over file", map[string]string{"PATCHBAY_CONSUL_ADDR": "env:8500", "PATCHBAY_PREFIX": "env/"}, []string{"--config", config}, func(g globals) bool {
			return g.ConsulAddr == "env:8500" && g.Prefix == "env/" && g.Federation == "from-file"
		}},
		{"consul's own environment", map[string]string{"CONSUL_HTTP_ADDR": "consul-env:8500", "CONSUL_HTTP_TOKEN": "secret", "NATS_URL": "nats://n:4222"}, nil, func(g globals) bool {
			return g.ConsulAddr == "consul-env:8500" && g.ConsulToken == "secret" && g.NATSURL == "nats://n:4222"
		}},
		{"PATCHBAY_ over CONSUL_", map[string]string{"CONSUL_HTTP_ADDR": "consul-env:8500", "PATCHBAY_CONSUL_ADDR": "env:8500"}, nil, func(g globals) bool {
			return g.ConsulAddr == "env:8500"
		}},
		{"flags over environment", map[string]string{"PATCHBAY_CONSUL_ADDR": "env:8500", "PATCHBAY_FEDERATION": "env-fed"}, []string{"--config", config, "--consul-addr", "flag:8500", "--federation", "flag-fed"}, func(g globals) bool {
			return g.ConsulAddr == "flag:8500" && g.Federation == "flag-fed" && g.Prefix == "file/"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"PATCHBAY_CONFIG", "PATCHBAY_CONSUL_ADDR", "PATCHBAY_PREFIX", "PATCHBAY_FEDERATION", "CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "NATS_URL", "PATCHBAY_NATS_URL", "PATCHBAY_CONSUL_TOKEN"} {
				t.Setenv(k, tt.env[k]) // unset ones become empty, which viper treats as unset
			}
			a := newApp(new(bytes.Buffer), new(bytes.Buffer))
			root := a.rootCmd()
			var got globals
			root.AddCommand(&cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { got = a.g; return nil }})
			root.SetArgs(append(tt.args, "probe"))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("globals = %+v", got)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("id: App_WWW\nrequiers: {}\nprovides: {WWW_URL: \"http://{HOTS}/\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badConfig := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(badConfig, []byte("consul-adr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring
		stderr     string // substring
		stderrRows int    // when > 0, lines on stderr
	}{
		{"valid examples", []string{"validate", "../../examples/services"}, 0, "ok   service app-www (federation default)", "", 0},
		{"three mistakes", []string{"validate", bad}, 1, "", bad + ":1:5: id: \"App_WWW\" is not a DNS label", 4},
		{"no paths", []string{"validate"}, 1, "", "missing PATH", 2},
		{"unknown flag", []string{"validate", "--bogus"}, 1, "", "unknown flag: --bogus", 2},
		{"unknown command", []string{"frobnicate"}, 1, "", `unknown command "frobnicate"`, 1},
		{"missing config", []string{"--config", "/nonexistent/patchbay.yaml", "version"}, 1, "", "config file /nonexistent/patchbay.yaml: no such file or directory", 1},
		{"unknown config key", []string{"--config", badConfig, "version"}, 1, "", `unknown key "consul-adr"`, 1},
		{"bad federation", []string{"--federation", "Bad_Fed", "version"}, 1, "", `--federation "Bad_Fed" is not a DNS label`, 1},
		{"version", []string{"version"}, 0, "patchbay dev (", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if rows := strings.Count(stderr, "\n"); tt.stderrRows > 0 && rows != tt.stderrRows {
				t.Fatalf("stderr has %d lines, want %d:\n%s", rows, tt.stderrRows, stderr)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("id = \"svc\"\nselect = 1\n[provides]\nA_URL = \"{NOPE}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := patchbay(t, "validate", "--json", "../../examples/services", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var report struct {
		Valid    bool
		Services []struct{ ID string }
		Problems []struct {
			File    string
			Line    int
			Message string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if report.Valid || len(report.Services) != 4 || len(report.Problems) != 2 {
		t.Fatalf("report = %+v", report)
	}
	for i, wantLine := range []int{2, 4} {
		if p := report.Problems[i]; p.File != bad || p.Line != wantLine || p.Message == "" {
			t.Errorf("problem %d = %+v, want line %d", i, p, wantLine)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

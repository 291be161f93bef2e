package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// noJSON are the commands that print no report, and why; every other
// command takes --json.
var noJSON = map[string]string{
	"patchbay console":  "a server: it prints its URL, and /api/state is its JSON",
	"patchbay dev":      "a local cluster in the foreground: a live table, not a report",
	"patchbay dev node": "a simulated node in the foreground",
	"patchbay resolver": "a daemon: /healthz and /metrics report",
}

// Every command that reports takes --json, so that scripts never parse text.
func TestEveryReportingCommandTakesJSON(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	visitCommands(root, func(c *cobra.Command) {
		path := c.CommandPath()
		if !c.Runnable() || c.HasSubCommands() || strings.HasPrefix(path, "patchbay completion") || strings.HasPrefix(path, "patchbay help") {
			return // a group, or a shell script cobra prints
		}
		_, exempt := noJSON[path]
		switch hasJSON := c.Flags().Lookup("json") != nil; {
		case !hasJSON && !exempt:
			t.Errorf("%s reports but takes no --json: add one (a struct printed with a.printJSON), or, if it prints no report, add it to noJSON with the reason", path)
		case hasJSON && exempt:
			t.Errorf("%s takes --json but noJSON exempts it: remove it from noJSON", path)
		}
	})
}

// graph --json is graph --format json; the two may not disagree.
func TestGraphJSON(t *testing.T) {
	code, viaFormat, stderr := patchbay(t, "graph", "../../examples/services", "--format", "json")
	if code != 0 {
		t.Fatalf("--format json: exit %d: %s", code, stderr)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		want     string // stdout, when code is 0
		inStderr string
	}{
		{"json", []string{"--json"}, 0, viaFormat, ""},
		{"json and format json", []string{"--json", "--format", "json"}, 0, viaFormat, ""},
		{"json and format dot", []string{"--json", "--format", "dot"}, 1, "", "--json and --format dot disagree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, append([]string{"graph", "../../examples/services"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.inStderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr, tt.inStderr)
			}
			if code == 0 && stdout != tt.want {
				t.Errorf("stdout differs from --format json:\n%s\nwant\n%s", stdout, tt.want)
			}
		})
	}
	if !json.Valid([]byte(viaFormat)) {
		t.Errorf("--format json printed no JSON: %s", viaFormat)
	}
}

// keygen --json says whether it made the seed, and never prints the seed.
func TestKeygenJSON(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "resolver.nk")
	for i, wantCreated := range []bool{true, false} {
		code, stdout, stderr := patchbay(t, "keygen", seed, "--if-missing", "--json")
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		var got keygenReport
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("run %d: %v: %s", i, err, stdout)
		}
		s, err := readSigningKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		if got.Created != wantCreated || got.SeedFile != seed || got.PublicKey != s.PublicKey() {
			t.Errorf("run %d: %+v, want created %v, seed_file %s, public_key %s", i, got, wantCreated, seed, s.PublicKey())
		}
		raw, _ := os.ReadFile(seed)
		if secret := strings.TrimSpace(string(raw)); strings.Contains(stdout, secret) {
			t.Errorf("run %d: --json printed the seed", i)
		}
	}
}

// Each old spelling of a renamed flag still sets the flag, hidden from
// help, and says on stderr (never stdout, which may be JSON) what to use.
func TestDeprecatedAliases(t *testing.T) {
	for _, path := range slices.Sorted(mapKeys(deprecatedFlags)) {
		for old, current := range deprecatedFlags[path] {
			t.Run(path+" --"+old, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				root := newRootCmd(&stdout, &stderr)
				c, _, err := root.Find(strings.Fields(path)[1:])
				if err != nil || c.CommandPath() != path {
					t.Fatalf("no command %s: %v", path, err)
				}
				alias := c.Flags().Lookup(old)
				if alias == nil || !alias.Hidden {
					t.Fatalf("--%s is not a hidden flag of %s: %+v", old, path, alias)
				}
				if err := c.ParseFlags([]string{"--" + old, "127.0.0.1:18711"}); err != nil {
					t.Fatal(err)
				}
				f := c.Flags().Lookup(current)
				if f.Value.String() != "127.0.0.1:18711" || !f.Changed {
					t.Errorf("--%s 127.0.0.1:18711 left --%s at %q (changed %v)", old, current, f.Value, f.Changed)
				}
				want := "--" + old + " is deprecated and will be removed; use --" + current
				if !strings.Contains(stderr.String(), want) || stdout.Len() > 0 {
					t.Errorf("stderr %q (want %q), stdout %q (want nothing)", stderr.String(), want, stdout.String())
				}
				if regexp.MustCompile(`(?m)^\s+--` + old + `\b`).MatchString(c.UsageString()) {
					t.Errorf("help shows the deprecated --%s", old)
				}
			})
		}
	}
}

// The resolver's flags may be set in the --config file under resolver:,
// with the precedence of the global settings: file < environment < flags.
func TestResolverConfigSection(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "patchbay.yaml")
	body := "consul-addr: file:8500\nresolver:\n  quiet: 3s\n  max-wait: 30s\n  name: from-file\n  http-addr: 127.0.0.1:19102\n  signing-key-file: /file.nk\n"
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	type got struct {
		quiet, maxWait      time.Duration
		name, http, key, ca string
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want got
	}{
		{"file", nil, nil, got{3 * time.Second, 30 * time.Second, "from-file", "127.0.0.1:19102", "/file.nk", "file:8500"}},
		{"flags beat the file", nil, []string{"--quiet", "1s", "--name", "flag"}, got{time.Second, 30 * time.Second, "flag", "127.0.0.1:19102", "/file.nk", "file:8500"}},
		{"environment beats the file", map[string]string{"PATCHBAY_SIGNING_KEY_FILE": "/env.nk"}, nil, got{3 * time.Second, 30 * time.Second, "from-file", "127.0.0.1:19102", "/env.nk", "file:8500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			a := newApp(io.Discard, io.Discard)
			root := a.rootCmd()
			c, _, _ := root.Find([]string{"resolver"})
			var g got
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				fl := cmd.Flags()
				g.quiet, _ = fl.GetDuration("quiet")
				g.maxWait, _ = fl.GetDuration("max-wait")
				g.name, _ = fl.GetString("name")
				g.http, _ = fl.GetString("http-addr")
				g.key, _ = fl.GetString("signing-key-file")
				g.ca = a.g.ConsulAddr
				return nil
			}
			root.SetArgs(append([]string{"resolver", "--config", config}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if g != tt.want {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
		})
	}
}

// A mistyped key of a section is an error naming it, the file and the
// closest key, as for the global settings.
func TestConfigSectionUnknownKey(t *testing.T) {
	config := filepath.Join(t.TempDir(), "patchbay.yaml")
	if err := os.WriteFile(config, []byte("resolver:\n  max-wiat: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := patchbay(t, "version", "--config", config)
	for _, want := range []string{config, `unknown key "max-wiat" in resolver:`, `did you mean "max-wait"?`} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q: want exit 1 and %q", code, stderr, want)
		}
	}
}

// Every section a command declares is one listener.yaml's loader lets by,
// so that one file configures a node that runs both daemons.
func TestConfigSectionNames(t *testing.T) {
	got := slices.Sorted(mapKeys(configSections(newRootCmd(io.Discard, io.Discard))))
	if want := slices.Sorted(slices.Values(sectionNames)); !slices.Equal(got, want) {
		t.Errorf("commands declare sections %v, sectionNames lists %v: make them the same", got, want)
	}
}

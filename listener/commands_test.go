package listener

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/listener/command"
)

// Every shell pattern the documentation and the example listener.yaml
// show is safe to copy: a manifest cannot add shell code of its own to
// the script it allows.
func TestExampleShellPatternsAreSafe(t *testing.T) {
	shell := regexp.MustCompile(`\[(sh|bash|dash|zsh|ksh|busybox|env), (\S+, )?-c, [^\]\n]*\]`)
	off := false
	compose, err := filepath.Glob("../deploy/compose/*/listener.yaml")
	if err != nil || len(compose) == 0 {
		t.Fatalf("no compose listener.yaml: %v", err)
	}
	for _, file := range append([]string{"../docs/listener-yaml.md", "../docs/security.md", "../examples/listener.yaml", "commands.go"}, compose...) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(file, "../deploy/") {
			if _, err := loadComposeConfig(t, file); err != nil {
				t.Errorf("%s does not load: %v", file, err)
			}
		}
		found := shell.FindAllString(strings.ReplaceAll(string(b), `\"`, `"`), -1)
		if len(found) == 0 {
			t.Errorf("%s shows no shell pattern: the test no longer looks at its examples", file)
		}
		for _, src := range found {
			var p CommandPattern
			if err := yaml.Unmarshal([]byte(src), &p); err != nil {
				t.Errorf("%s: %s: %v", file, src, err)
				continue
			}
			if unsafe, _ := command.ShellGlob(p); unsafe {
				t.Errorf("%s: the example %s is warned about at load", file, src)
			}
			attack := make([]string, len(p))
			injects := false
			for i, w := range p {
				attack[i] = strings.NewReplacer("*", "x", "?", "x").Replace(w)
				if i > 0 && p[i-1] == "-c" { // the script: every glob a chance to inject
					attack[i] = strings.NewReplacer("*", "; echo pwned;", "?", ";").Replace(w)
					injects = attack[i] != w
				}
			}
			a := AllowConfig{Commands: []CommandPattern{p}, Defaults: &off}
			if injects && a.Command("app-www", attack) {
				t.Errorf("%s: the example %s allows %q", file, src, attack)
			}
		}
	}
}

func TestAllowConfig(t *testing.T) {
	load := func(t *testing.T, allow string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "listener.yaml")
		doc := "node: n1\nservices: [{service: app}]\n" + allow
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(path)
	}
	cfg, err := load(t, "allow:\n  commands:\n    - nginx -s reload\n    - [sh, -c, \"echo *\"]\n  sources: [/srv/**]\n  defaults: false\n")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Allow
	if len(a.Commands) != 2 || strings.Join(a.Commands[0], "|") != "nginx|-s|reload" || strings.Join(a.Commands[1], "|") != "sh|-c|echo *" || (a.Defaults == nil || *a.Defaults) {
		t.Fatalf("allow %+v", a)
	}
	errs := []struct{ allow, want string }{
		{"allow: {commands: [\"\"]}", "listener.yaml:3: allow.commands: an empty command"},
		{"allow: {commands: [\"a ** b\"]}", `"**" may only be the last word`},
		{"allow: {commands: [\"a [\"]}", "is not a valid glob"},
		{"allow: {commands: [[a, [b]]]}", "a word is a list"},
		{"allow: {sources: [etc/x]}", `allow.sources: "etc/x" is not an absolute path`},
		{"allow: {comands: []}", `unknown key "comands" in allow; did you mean "commands"?`},
	}
	for _, e := range errs {
		_, err := load(t, e.allow+"\n")
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: error %v, want %q", e.allow, err, e.want)
		}
	}
}

func TestAllowDestinationsConfig(t *testing.T) {
	load := func(t *testing.T, allow string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "listener.yaml")
		doc := "node: n1\nservices: [{service: app}]\n" + allow
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(path)
	}
	cfg, err := load(t, "allow:\n  destinations: [\"/srv/{SERVICE}/**\", /etc/cron.d/app, \"/**\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Allow.Destination("app", "", "/srv/app/x/y") || !cfg.Allow.Destination("app", "", "/etc/cron.d/app") {
		t.Errorf("allow %+v does not allow its own destinations", cfg.Allow)
	}
	errs := []struct{ allow, want string }{
		{"allow: {destinations: [etc/x]}", `listener.yaml:3: allow.destinations: "etc/x" is not a clean absolute path`},
		{"allow: {destinations: [/etc/../x]}", `allow.destinations: "/etc/../x" is not a clean absolute path`},
		{"allow: {destinations: [\"/etc/[\"]}", "is not a valid glob"},
		{"allow: {destination: []}", `did you mean "destinations"?`},
	}
	for _, e := range errs {
		_, err := load(t, e.allow+"\n")
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: error %v, want %q", e.allow, err, e.want)
		}
	}
}

func TestEnvConfig(t *testing.T) {
	load := func(t *testing.T, env string) (*Config, error) {
		path := filepath.Join(t.TempDir(), "listener.yaml")
		doc := "node: n1\nservices: [{service: app}]\n" + env
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(path)
	}
	t.Setenv("PATH", "/usr/bin:/bin")
	t.Setenv("HTTP_PROXY", "http://proxy:3128")
	t.Setenv("PATCHBAY_CONSUL_TOKEN", "secret")
	cfg, err := load(t, "env:\n  pass: [HTTP_PROXY, NOT_SET]\n  set: {LANG: C.UTF-8}\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cfg.Env.Node(), " "), "PATH=/usr/bin:/bin HTTP_PROXY=http://proxy:3128 LANG=C.UTF-8"; got != want {
		t.Errorf("Env.Node() = %s, want %s", got, want)
	}
	errs := []struct{ env, want string }{
		{"env: {pass: [PATCHBAY_CONSUL_TOKEN]}", "listener.yaml:3: env.pass: PATCHBAY_CONSUL_TOKEN is the listener's own"},
		{"env: {pass: [CONSUL_HTTP_TOKEN]}", "env.pass: CONSUL_HTTP_TOKEN is the listener's own"},
		{"env: {set: {PATCHBAY_SERVICE: x}}", "env.set: PATCHBAY_SERVICE is the listener's own"},
		{"env: {pass: [\"A-B\"]}", `env.pass: "A-B" is not an environment variable name`},
		{"env: {pas: []}", `unknown key "pas" in env; did you mean "pass"?`},
	}
	for _, e := range errs {
		_, err := load(t, e.env+"\n")
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: error %v, want %q", e.env, err, e.want)
		}
	}
}

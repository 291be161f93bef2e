package listener

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
	for _, file := range append([]string{"../docs/listener-yaml.md", "../docs/security.md", "../examples/listener.yaml", "allow.go"}, compose...) {
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
			if unsafe, _ := shellGlob(p); unsafe {
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

func TestAllowCheckCommand(t *testing.T) {
	staged := "/etc/nginx/.nginx.conf.patchbay-123"
	allow := AllowConfig{Commands: []CommandPattern{{"cat", "*"}, {"test", "-s", "--file={STAGED}"}}}
	tests := []struct {
		name   string
		staged string
		argv   []string
		want   bool
	}{
		{"default check on the staged path", staged, []string{"nginx", "-t", "-q", "-c", staged}, true},
		{"default check on another path", staged, []string{"nginx", "-t", "-q", "-c", "/etc/shadow"}, false},
		{"default check, not a check", "", []string{"nginx", "-t", "-q", "-c", staged}, false},
		{"staged inside a word", staged, []string{"test", "-s", "--file=" + staged}, true},
		{"staged path then more", staged, []string{"nginx", "-t", "-q", "-c", staged + "/../../shadow"}, false},
		{"a glob character in the staged path is itself", "/etc/x*/.f.patchbay-1", []string{"nginx", "-t", "-c", "/etc/xy/.f.patchbay-1"}, false},
		{"* stops at /", staged, []string{"cat", staged}, false},
		{"* matches a word", staged, []string{"cat", "secret"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allow.command("app-www", tt.staged, tt.argv); got != tt.want {
				t.Errorf("command(staged %q, %q) = %v, want %v", tt.staged, tt.argv, got, tt.want)
			}
		})
	}
}

func TestShellGlob(t *testing.T) {
	tests := []struct {
		pattern CommandPattern
		unsafe  bool
		safer   string // "" when there is no safer form to suggest
	}{
		{CommandPattern{"sh", "-c", "echo api: *"}, true, `[sh, -c, 'echo api: "$1"', sh, "*"]`},
		{CommandPattern{"/bin/bash", "-ec", "systemctl reload app-*"}, true, `[/bin/bash, -ec, 'systemctl reload "$1"', bash, "app-*"]`},
		{CommandPattern{"env", "LC_ALL=C", "sh", "-c", "ls ?"}, true, `[env, LC_ALL=C, sh, -c, 'ls "$1"', sh, "?"]`},
		{CommandPattern{"busybox", "sh", "-o", "errexit", "-c", "cat [ab]"}, true, `[busybox, sh, -o, errexit, -c, 'cat "$1"', sh, "[ab]"]`},
		{CommandPattern{"sh", "-c", "*"}, true, ""},
		{CommandPattern{"sh", "**"}, true, ""},
		{CommandPattern{"sh", "-c", `echo "api: $1"`, "sh", "*"}, false, ""},
		{CommandPattern{"sh", "-c", `echo \*`}, false, ""},
		{CommandPattern{"sh", "/opt/scripts/*.sh"}, false, ""},
		{CommandPattern{"chef-solo", "-o", "**"}, false, ""},
		{CommandPattern{"nginx", "-s", "reload"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.pattern.flow(), func(t *testing.T) {
			unsafe, safer := shellGlob(tt.pattern)
			got := ""
			if safer != nil {
				got = safer.flow()
			}
			if unsafe != tt.unsafe || got != tt.safer {
				t.Errorf("shellGlob = %v, %s; want %v, %s", unsafe, got, tt.unsafe, tt.safer)
			}
			if safer != nil { // the safer form reads back as itself
				var back CommandPattern
				if err := yaml.Unmarshal([]byte(got), &back); err != nil || back.flow() != got {
					t.Errorf("%s reads back as %q (%v)", got, back, err)
				}
			}
		})
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
	if got, want := strings.Join(nodeEnv(cfg), " "), "PATH=/usr/bin:/bin HTTP_PROXY=http://proxy:3128 LANG=C.UTF-8"; got != want {
		t.Errorf("nodeEnv = %s, want %s", got, want)
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

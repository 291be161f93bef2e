package manifest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// A template every host would refuse is a problem at validate: at the
// manifest's file:line of its contents or source, with the template's own
// line, parsed by the engine the listeners render with.
func TestCheckTemplates(t *testing.T) {
	hostOnly := filepath.Join(t.TempDir(), "absent.tmpl")
	badSource := filepath.Join(t.TempDir(), "bad.tmpl")
	if err := os.WriteFile(badSource, []byte("a\nb\n{{ range .X }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string // problems, File relative to the directory
		ok    bool     // the service stays in the set
	}{
		{"yaml inline", map[string]string{"app.yaml": "id: app\ntemplates:\n  conf:\n    destination: /etc/app/conf\n    contents: |\n      listen 80;\n      server {{ .Foo };\n"},
			[]string{`app.yaml:5:15: template conf, line 2: unexpected "}" in operand; every host would refuse to render it`}, false},
		{"json inline", map[string]string{"app.json": "{\"id\": \"app\",\n \"templates\": {\"conf\": {\"destination\": \"/etc/app/conf\",\n  \"contents\": \"x {{ bindng \\\"A\\\" }}\"}}}\n"},
			[]string{`app.json:3:15: template conf, line 1: function "bindng" not defined; every host would refuse to render it`}, false},
		{"toml inline", map[string]string{"app.toml": "id = \"app\"\n\n[templates.conf]\ndestination = \"/etc/app/conf\"\ncontents = \"{{ end }}\"\n"},
			[]string{`app.toml:5:1: template conf, line 1: unexpected {{end}}; every host would refuse to render it`}, false},
		{"a later fragment's template", map[string]string{
			"00-defaults.yaml": "id: app\nenvironment: {A: b}\n",
			"10-app.yaml":      "id: app\n\ntemplates:\n  env:\n    destination: /etc/app/env\n    source: builtin:envv\n"},
			[]string{`10-app.yaml:6:13: template env: unknown builtin "envv"; the builtins are dotenv, env, haproxy, json, nginx, systemd; every host would refuse to render it`}, false},
		{"a bad source readable here", map[string]string{"app.yaml": "id: app\ntemplates:\n  conf: {destination: /etc/app/conf, source: " + badSource + "}\n"},
			[]string{`app.yaml:3:46: template conf, line 4: unexpected EOF; every host would refuse to render it`}, false},
		{"a source only the hosts have", map[string]string{"app.yaml": "id: app\ntemplates:\n  conf: {destination: /etc/app/conf, source: " + hostOnly + "}\n"}, nil, true},
		{"two bad templates", map[string]string{"app.yaml": "id: app\ntemplates:\n  b: {destination: /etc/b, contents: \"{{ plugin \\\"x\\\" }}\"}\n  a: {destination: /etc/a, contents: \"{{\"}\n"},
			[]string{
				`app.yaml:3:38: template b, line 1: function "plugin" is not allowed in patchbay templates (it has side effects); every host would refuse to render it`,
				`app.yaml:4:38: template a, line 1: unclosed action; every host would refuse to render it`,
			}, false},
		{"builtins and good inline", map[string]string{"app.yaml": "id: app\ntemplates:\n  n: {destination: /etc/n, source: \"builtin:nginx\"}\n  c: {destination: /etc/c, contents: \"{{ range bindings }}{{ .Name }}{{ end }}\"}\n"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := manifest.Load(dir)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			probs := manifest.CheckTemplates(set, templates.ParseFile)
			var got []string
			for _, p := range probs {
				rel, _ := filepath.Rel(dir, p.File)
				p.File = rel
				got = append(got, p.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%q\nwant:\n%q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], tt.want[i])
				}
			}
			if kept := len(set.Services) == 1; kept != tt.ok {
				t.Errorf("service kept in the set: %v, want %v", kept, tt.ok)
			}
		})
	}
}

package templates

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/manifest"
)

// Parse finds what every host's render would refuse, at the template's own
// line, without executing anything.
func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		contents string
		want     string // "" parses
	}{
		{"plain text", "listen 80;\n", ""},
		{"patchbay functions", `{{ range upstreams "ROUTES" }}{{ .Address }}{{ end }}{{ option "listen" }}{{ binding "X" | shellQuote }}`, ""},
		{"consul-template and sprig functions", `{{ key "a/b" }}{{ toUpper "x" }}{{ env "HOME" }}{{ "a" | sprig_upper }}`, ""},
		{"define and template", `{{ define "x" }}{{ toLower . }}{{ end }}{{ template "x" "A" }}`, ""},
		{"unclosed action", "a\n{{ .Foo }", `template conf, line 2: unexpected "}" in operand`},
		{"unterminated range", "{{ range .X }}\n\n", "template conf, line 3: unexpected EOF"},
		{"unknown function", "ok\nok\n{{ if true }}{{ upstream \"ROUTES\" }}{{ end }}", `template conf, line 3: function "upstream" not defined`},
		{"unknown function in a define", "{{ define \"x\" }}\n{{ bindng \"A\" }}{{ end }}", `template conf, line 2: function "bindng" not defined`},
		{"denied function", `{{ plugin "rm" "-rf" "/" }}`, `template conf, line 1: function "plugin" is not allowed in patchbay templates (it has side effects)`},
		{"denied writeToFile", `{{ writeToFile "/etc/cron.d/x" "root" "root" "0644" "* * * * * root sh" }}`, `function "writeToFile" is not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Parse("conf", tt.contents)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Parse: nil, want %q", tt.want)
			case tt.want != "" && !contains(err.Error(), tt.want):
				t.Fatalf("Parse: %q, want %q", err, tt.want)
			case err != nil && !errors.Is(err, ErrTemplate):
				t.Fatalf("Parse: %v is not ErrTemplate", err)
			}
		})
	}
}

// A template that parses renders, and one that does not fails both ways
// with the same line: Parse and Render use one engine.
func TestParseAgreesWithRender(t *testing.T) {
	for _, contents := range []string{"{{ .Foo }", "x\n{{ nosuch }}", "{{ if 1 }}"} {
		perr := Parse("conf", contents)
		_, rerr := NewRenderer().Render(t.Context(), "conf", contents, Data{})
		if perr == nil || rerr == nil {
			t.Fatalf("%q: parse %v, render %v: want both to fail", contents, perr, rerr)
		}
	}
	for _, name := range Builtins() {
		text, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := Parse(name, text); err != nil {
			t.Errorf("builtin %s: %v", name, err)
		}
	}
}

// ParseFile reads a source only when it is a regular file it can read; a
// source that exists only on the hosts is not an error.
func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.tmpl"), filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(good, []byte("{{ option \"x\" }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("\n\n{{ end }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := mkfifo(t, filepath.Join(dir, "fifo.tmpl")) // opening it would block until a writer came
	tests := []struct {
		name string
		file manifest.TemplateFile
		want string
	}{
		{"inline", manifest.TemplateFile{Contents: "{{ .Foo }"}, "template t, line 1:"},
		{"builtin", manifest.TemplateFile{Source: "builtin:nginx"}, ""},
		{"unknown builtin", manifest.TemplateFile{Source: "builtin:ngnix"}, `unknown builtin "ngnix"`},
		{"source here", manifest.TemplateFile{Source: good}, ""},
		{"bad source here", manifest.TemplateFile{Source: bad}, "template t, line 3: unexpected {{end}}"},
		{"source only on the hosts", manifest.TemplateFile{Source: filepath.Join(dir, "absent.tmpl")}, ""},
		{"a directory", manifest.TemplateFile{Source: dir}, ""},
		{"a FIFO", manifest.TemplateFile{Source: fifo}, ""}, // a directory again where there are none
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseFile("t", tt.file)
			if (tt.want == "") != (err == nil) || (err != nil && !contains(err.Error(), tt.want)) {
				t.Fatalf("ParseFile: %v, want %q", err, tt.want)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// BenchmarkParse is what validate spends on one builtin (nginx, the
// largest): about 0.3 ms with function probes cached, 0.9 ms without.
func BenchmarkParse(b *testing.B) {
	text, err := Builtin("nginx")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Parse("nginx", text); err != nil {
			b.Fatal(err)
		}
	}
}

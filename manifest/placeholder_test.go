package manifest

import (
	"errors"
	"testing"
	"testing/quick"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"HOST": "10.0.0.1", "PORT": "8080", "ENV": "prod"}
	tests := []struct {
		in, want string
		wantErr  error
	}{
		{in: "http://{HOST}:{PORT}/x", want: "http://10.0.0.1:8080/x"},
		{in: "no placeholders", want: "no placeholders"},
		{in: "{{literal}} {ENV}", want: "{literal} prod"},
		{in: "{{{HOST}}}", want: "{10.0.0.1}"},
		{in: "", want: ""},
		{in: "{HOTS}", wantErr: ErrUnknownPlaceholder},
		{in: "{HOST", wantErr: ErrTemplateSyntax},
		{in: "a}b", wantErr: ErrTemplateSyntax},
		{in: "{host}", wantErr: ErrTemplateSyntax},
		{in: "{}", wantErr: ErrTemplateSyntax},
		{in: "{9LIVES}", wantErr: ErrTemplateSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Expand(tt.in, vars)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Expand(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnknownPlaceholderSuggests(t *testing.T) {
	_, err := Expand("{HOTS}", map[string]string{"HOST": "h", "PORT": "1"})
	if err == nil || err.Error() != `manifest: unknown placeholder {HOTS}; did you mean "HOST"?` {
		t.Fatalf("error = %v", err)
	}
}

func TestTemplateNames(t *testing.T) {
	tpl, err := ParseTemplate("{A}-{B}-{A}-{{C}}")
	if err != nil {
		t.Fatal(err)
	}
	if got := tpl.Names(); len(got) != 2 || got[0] != "A" || got[1] != "B" {
		t.Fatalf("Names = %v, want [A B]", got)
	}
	if _, ok := tpl.Single(); ok {
		t.Fatal("Single on a composite template")
	}
	one, _ := ParseTemplate("{PRIMARY_DATABASE_URL}")
	if k, ok := one.Single(); !ok || k != "PRIMARY_DATABASE_URL" {
		t.Fatalf("Single = %q, %v", k, ok)
	}
}

// Any string survives Escape and Expand unchanged: literal braces can always
// be written.
func TestEscapeRoundTrip(t *testing.T) {
	f := func(s string) bool {
		got, err := Expand(Escape(s), nil)
		return err == nil && got == s
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

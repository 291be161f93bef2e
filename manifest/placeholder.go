package manifest

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/internal/errkind"
)

// Placeholder errors.
var (
	ErrTemplateSyntax     = errkind.New(errkind.Input, "manifest: template syntax")
	ErrUnknownPlaceholder = errkind.New(errkind.Input, "manifest: unknown placeholder")
)

// keyPattern is what provided keys, variable names and placeholders look like.
var keyPattern = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// IsKeyName reports whether s is a valid provided key or variable name.
func IsKeyName(s string) bool { return keyPattern.MatchString(s) }

// Template is a parsed string with {NAME} placeholders; "{{" and "}}" stand
// for literal braces.
type Template struct {
	parts []part
}

type part struct {
	literal string
	name    string // a placeholder when non-empty
}

// ParseTemplate parses s. Errors wrap ErrTemplateSyntax and give the byte
// offset of the problem.
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && strings.HasPrefix(s[i:], "{{"), c == '}' && strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(c)
			i++
		case c == '}':
			return Template{}, fmt.Errorf("%w: unmatched \"}\" at offset %d; write \"}}\" for a literal brace", ErrTemplateSyntax, i)
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return Template{}, fmt.Errorf("%w: \"{\" at offset %d is never closed; write \"{{\" for a literal brace", ErrTemplateSyntax, i)
			}
			name := s[i+1 : i+end]
			if !IsKeyName(name) {
				return Template{}, fmt.Errorf("%w: placeholder {%s} at offset %d is not an upper-case name like {HOST}", ErrTemplateSyntax, name, i)
			}
			flush()
			t.parts = append(t.parts, part{name: name})
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// Names returns the placeholders in order of first use, without repeats.
func (t Template) Names() []string {
	var names []string
	seen := map[string]bool{}
	for _, p := range t.parts {
		if p.name != "" && !seen[p.name] {
			seen[p.name] = true
			names = append(names, p.name)
		}
	}
	return names
}

// Single returns the placeholder name when the template is exactly one
// placeholder and nothing else.
func (t Template) Single() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].name != "" {
		return t.parts[0].name, true
	}
	return "", false
}

// Expand fills in placeholders from vars. An unknown placeholder is an
// error wrapping ErrUnknownPlaceholder that suggests the closest known name.
func (t Template) Expand(vars map[string]string) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.literal)
			continue
		}
		v, ok := vars[p.name]
		if !ok {
			return "", fmt.Errorf("%w {%s}%s", ErrUnknownPlaceholder, p.name, suggest(p.name, slices.Sorted(maps.Keys(vars))))
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// Expand parses s and fills in its placeholders from vars.
func Expand(s string, vars map[string]string) (string, error) {
	t, err := ParseTemplate(s)
	if err != nil {
		return "", err
	}
	return t.Expand(vars)
}

// Escape returns a template that expands to s verbatim.
func Escape(s string) string {
	return strings.NewReplacer("{", "{{", "}", "}}").Replace(s)
}

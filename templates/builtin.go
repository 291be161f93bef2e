package templates

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// ErrUnknownBuiltin: a builtin:NAME that patchbay does not have.
var ErrUnknownBuiltin = errkind.New(errkind.Input, "templates: unknown builtin")

//go:embed builtin/*.tmpl
var builtins embed.FS

// Builtins lists the builtin template names.
func Builtins() []string {
	entries, _ := fs.ReadDir(builtins, "builtin") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() { // builtin/local: the listener's own files
			continue
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".tmpl"))
	}
	slices.Sort(names)
	return names
}

// Builtin returns the contents of builtin template name.
func Builtin(name string) (string, error) {
	b, err := builtins.ReadFile(path.Join("builtin", name+".tmpl"))
	if err != nil {
		return "", fmt.Errorf("%w %q; the builtins are %s", ErrUnknownBuiltin, name, strings.Join(Builtins(), ", "))
	}
	return string(b), nil
}

// Contents returns a template's text: the builtin "builtin:NAME", the
// file at source, or the inline contents of a manifest template.
func Contents(t manifest.TemplateFile) (string, error) {
	switch {
	case t.Contents != "":
		return t.Contents, nil
	case strings.HasPrefix(t.Source, manifest.BuiltinPrefix):
		return Builtin(strings.TrimPrefix(t.Source, manifest.BuiltinPrefix))
	}
	b, err := os.ReadFile(t.Source)
	if err != nil {
		return "", fmt.Errorf("templates: read template: %w", err)
	}
	return string(b), nil
}

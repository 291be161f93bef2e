package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/console"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/dev"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// TestExitCodeKinds checks that each sentinel exits with its kind's code,
// however deep it is wrapped.
func TestExitCodeKinds(t *testing.T) {
	user := []error{
		manifest.ErrInvalid, manifest.ErrTemplateSyntax, manifest.ErrUnknownPlaceholder, errUsage,
		registry.ErrInvalid, registry.ErrNotUTF8, registry.ErrConflict, registry.ErrNotFound, registry.ErrUnsupported,
		listener.ErrConfig, listener.ErrProvision, listener.ErrControl, listener.ErrRefused,
		dev.ErrNoConsul, dev.ErrNoNATS, dev.ErrInUse, console.ErrForbidden,
		templates.ErrTemplate, templates.ErrUnknownVar, templates.ErrUnknownBuiltin, templates.ErrUnresolved,
		templates.ErrTooFewUpstreams, templates.ErrUnquotable, templates.ErrCheckFailed,
	}
	backend := []error{
		registry.ErrUnreachable, registry.ErrPermissionDenied, registry.ErrRateLimited,
		listener.ErrHAProxyAPI, templates.ErrLookup, templates.ErrCommand, events.ErrMalformed,
	}
	ran := func(err error) error { return commandError{fmt.Errorf("publish: %w", err)} }
	for _, err := range user {
		if got := exitCode(ran(err)); got != exitUser {
			t.Errorf("%v: exit %d, want %d", err, got, exitUser)
		}
	}
	for _, err := range backend {
		if got := exitCode(ran(err)); got != exitInternal {
			t.Errorf("%v: exit %d, want %d", err, got, exitInternal)
		}
	}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"cobra refused the command line", errors.New(`unknown flag: --bogus`), exitUser},
		{"changes pending", ran(errChanges), exitChanges},
		{"usage error", commandError{usageErrorf("give a PATH")}, exitUser},
		{"a user's mistake found while a backend failed", ran(fmt.Errorf("%w: %w", registry.ErrUnreachable, manifest.ErrInvalid)), exitUser},
		{"no kind: an internal error", ran(errors.New("boom")), exitInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// TestSentinelsHaveKinds fails on an exported sentinel declared with
// errors.New or fmt.Errorf instead of errkind.New: its exit code would be
// decided by default instead of by its author.
func TestSentinelsHaveKinds(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "tools" || d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && path != root:
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go"):
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Err") || i >= len(vs.Values) {
						continue
					}
					if call, ok := vs.Values[i].(*ast.CallExpr); ok {
						if fn, ok := call.Fun.(*ast.SelectorExpr); ok {
							if pkg, ok := fn.X.(*ast.Ident); ok && (pkg.Name == "errors" || pkg.Name == "fmt") {
								t.Errorf("%s: %s is declared with %s.%s; declare it with errkind.New and its kind", fset.Position(name.Pos()), name.Name, pkg.Name, fn.Sel.Name)
							}
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

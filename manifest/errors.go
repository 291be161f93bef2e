package manifest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/internal/errkind"
	suggestpkg "github.com/patchbay/patchbay/internal/suggest"
)

// ErrInvalid is matched (errors.Is) by every error that means the input is
// wrong, as opposed to unreadable.
var ErrInvalid = errkind.New(errkind.Input, "manifest: invalid")

// Problem is one thing wrong with an input file, where it is and what to do.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// Error formats as file:line:column: message.
func (p Problem) Error() string {
	switch {
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	default:
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	}
}

// Problems are every problem found in a set of files, in file and line
// order. The error of Load is always a Problems when the input is wrong.
type Problems []Problem

// Error lists one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// Kind is ErrInvalid's: the input is wrong.
func (ps Problems) Kind() errkind.Kind { return errkind.Of(ErrInvalid) }

func (ps Problems) sorted() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return slices.Compact(ps)
}

// suggest returns `; did you mean "x"?` when a known word is close to w.
func suggest(w string, known []string) string {
	if k, ok := suggestpkg.Closest(w, known); ok {
		return fmt.Sprintf("; did you mean %q?", k)
	}
	return ""
}

package errkind

import (
	"errors"
	"fmt"
	"testing"
)

// ownKind is an error type of its own that states its kind, like a list of
// problems does.
type ownKind struct {
	kind  Kind
	cause error
}

func (e ownKind) Error() string { return "own" }
func (e ownKind) Kind() Kind    { return e.kind }
func (e ownKind) Unwrap() error { return e.cause }

func TestOf(t *testing.T) {
	input := New(Input, "test: bad input")
	backend := New(Backend, "test: backend down")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"input", fmt.Errorf("load: %w", input), Input},
		{"backend", fmt.Errorf("get: %w", backend), Backend},
		{"both: the user's to fix", fmt.Errorf("%w: %w", backend, input), Input},
		{"joined, input deeper than backend", errors.Join(backend, fmt.Errorf("a: %w", fmt.Errorf("b: %w", input))), Input},
		{"a backend error wrapping an input one", ownKind{Backend, fmt.Errorf("x: %w", input)}, Input},
		{"a type stating its kind", fmt.Errorf("check: %w", ownKind{kind: Input}), Input},
		{"a type stating backend over no kind", ownKind{Backend, errors.New("eof")}, Backend},
		{"neither", errors.New("something else"), Unknown},
		{"nil", nil, Unknown},
		{"same text is not the sentinel", errors.New("test: bad input"), Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.err); got != tt.want {
				t.Errorf("Of(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// Two sentinels with the same text are two sentinels: errors.Is tells them
// apart, as it does errors.New's.
func TestNewIsIdentity(t *testing.T) {
	a, b := New(Input, "test: same"), New(Input, "test: same")
	if errors.Is(fmt.Errorf("w: %w", a), b) {
		t.Error("errors.Is matched a sentinel with another of the same text")
	}
	if !errors.Is(fmt.Errorf("w: %w", a), a) {
		t.Error("errors.Is did not match the wrapped sentinel itself")
	}
	if a.Error() != "test: same" {
		t.Errorf("Error() = %q", a.Error())
	}
}

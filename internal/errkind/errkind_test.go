package errkind

import (
	"errors"
	"fmt"
	"testing"
)

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
		{"neither", errors.New("something else"), Unknown},
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

package command

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/templates"
)

// Output without newlines is logged in bounded pieces rather than kept
// whole until the command ends.
func TestLineLoggerBoundsPartialLine(t *testing.T) {
	var logged bytes.Buffer
	w := NewLineLogger(slog.New(slog.NewTextHandler(&logged, nil)))
	chunk := []byte(strings.Repeat("x", 4096))
	for range 256 { // 1 MiB, no newline
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if w.buf.Len() >= templates.MaxKeptOutput {
			t.Fatalf("kept %d bytes of a partial line, want less than %d", w.buf.Len(), templates.MaxKeptOutput)
		}
	}
	w.Flush()
	if got := strings.Count(logged.String(), strings.Repeat("x", 1000)); got == 0 {
		t.Fatal("nothing of the output was logged")
	}
	if total := strings.Count(logged.String(), "x"); total < 256*4096 {
		t.Errorf("logged %d bytes of output, want all %d", total, 256*4096)
	}
}

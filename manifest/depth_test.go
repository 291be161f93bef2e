package manifest

import (
	"errors"
	"strings"
	"testing"
)

// TestNestedTooDeep: a manifest nested past maxDepth is refused with the
// same message in every format, with the line where the format gives one,
// never a panic (a TOML one used to dereference a nil root).
func TestNestedTooDeep(t *testing.T) {
	deep := maxDepth + 2
	tests := []struct {
		name, file, doc string
		line            int
	}{
		{"yaml flow lists", "deep.yaml", "id: a\nenvironment:\n  A: " + strings.Repeat("[", deep) + strings.Repeat("]", deep) + "\n", 3},
		{"json lists", "deep.json", "{\"id\": \"a\",\n\"environment\": {\"A\": " + strings.Repeat("[", deep) + strings.Repeat("]", deep) + "}}", 2},
		{"toml arrays", "deep.toml", "id = \"a\"\n\n[environment]\nA = " + strings.Repeat("[", deep) + strings.Repeat("]", deep) + "\n", 4},
		{"toml inline tables", "deep.toml", "id = \"a\"\nenvironment = " + strings.Repeat("{a = ", deep) + "1" + strings.Repeat("}", deep) + "\n", 2},
		{"toml dotted keys", "deep.toml", "id = \"a\"\n\nenvironment." + strings.Repeat("a.", deep) + "b = 1\n", 3},
		{"toml table header", "deep.toml", "id = \"a\"\n\n[environment." + strings.Repeat("a.", deep) + "b]\nc = 1\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.file, []byte(tt.doc))
			var probs Problems
			if !errors.As(err, &probs) || len(probs) != 1 {
				t.Fatalf("Parse: %v, want one problem", err)
			}
			p := probs[0]
			if p.File != tt.file || !strings.HasSuffix(p.Message, "nested deeper than 64 levels") || p.Line != tt.line {
				t.Errorf("problem %q (line %d), want %s:%d: nested deeper than 64 levels", p.Error(), p.Line, tt.file, tt.line)
			}
		})
	}
}

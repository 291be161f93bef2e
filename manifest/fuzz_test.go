package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var fuzzFormats = []string{".yaml", ".json", ".toml"}

// FuzzParseExpand feeds arbitrary documents through parsing, validation and
// placeholder expansion. Invariants: nothing panics; every failure is a
// Problems naming the file; every accepted manifest re-parses from its
// normalized JSON unchanged, and its provides expand for any instance.
func FuzzParseExpand(f *testing.F) {
	err := filepath.WalkDir("../examples", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for i, ext := range fuzzFormats {
			if strings.HasSuffix(p, ext) {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				f.Add(uint8(i), data)
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		format uint8
		doc    string
	}{
		{0, "id: a\nenvironment: {A: &x 1, B: *x}\n"},
		{0, "id: a\nprovides: {A: \"{{{HOST}}}\"}\n---\nid: b\n"},
		{1, `{"id": "a", "provides": {"A": "\u007bHOST\u007d\/"}, "id": "b"}`},
		{2, "id = \"a\"\n[[rollout]]\ngroup = \"g\"\n[requires.X]\nkey = \"*_URL\"\nselect = \"all\"\n"},
	} {
		f.Add(seed.format, []byte(seed.doc))
	}
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		name := "fuzz" + fuzzFormats[int(format)%len(fuzzFormats)]
		m, err := Parse(name, data)
		if err != nil {
			var probs Problems
			if !errors.As(err, &probs) || len(probs) == 0 {
				t.Fatalf("error is not Problems: %v", err)
			}
			for _, p := range probs {
				if p.File != name || p.Message == "" {
					t.Fatalf("problem without file or message: %+v", p)
				}
			}
			return
		}
		assertStable(t, m)
		vars := map[string]string{"HOST": "10.0.0.1", "PORT": "80", "NODE": "n1", "REGION": "r", "INDEX": "0"}
		for k, v := range m.Environment {
			vars[k] = v
		}
		for k, tpl := range m.Provides {
			if _, err := Expand(tpl, vars); err != nil {
				t.Fatalf("validated provides %s = %q does not expand: %v", k, tpl, err)
			}
		}
	})
}

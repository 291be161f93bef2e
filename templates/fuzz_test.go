package templates

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
)

// FuzzEnvSourcedBySh checks the promise of builtin:env: whatever bytes a
// value holds, sourcing the file gives the process exactly those bytes.
func FuzzEnvSourcedBySh(f *testing.F) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		f.Fatal("no sh on PATH: the env file promise cannot be checked")
	}
	contents, err := Builtin("env")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		hostile, "", "'", `'\''`, "\n\n", `"`, `\`, "$", "$(id)", "`id`", "#", "a b", " lead", "trail ",
		"\r", "\t", "ü ✓", "\xff\xfe", "\x81\x88", "a\x00b",
		strings.Repeat("'\n$(id)`#\\", 500),
		strings.Repeat("x", 1<<12),
		allBytes(),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := Data{
			Service: "app",
			Binding: &binding.Binding{Vars: map[string]binding.Var{
				"X": {Select: "one", Value: v, Resolved: true},
				"Y": {Select: "one", Value: v, Resolved: true},
				// A fixed value after the fuzzed ones: a quote left open
				// above would swallow or break it.
				"Z": {Select: "one", Value: "end", Resolved: true},
			}},
		}
		out, err := NewRenderer().Render(context.Background(), "env", contents, d)
		if strings.IndexByte(v, 0) >= 0 {
			if !errors.Is(err, ErrUnquotable) {
				t.Fatalf("value with NUL: got %v, want ErrUnquotable", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "env.sh")
		if err := os.WriteFile(file, out, 0o600); err != nil {
			t.Fatal(err)
		}
		// NUL separators keep the comparison exact: no value can hold one.
		cmd := exec.Command(sh, "-c", `set -a; . "$1"; printf '%s\0' "$X" "$Y" "$Z"`, "sh", file)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("sh: %v\n%s\nfile:\n%q", err, stderr.Bytes(), out)
		}
		if want := v + "\x00" + v + "\x00end\x00"; string(got) != want {
			t.Fatalf("sh read\n%q\nwant\n%q\nfile:\n%q", got, want, out)
		}
	})
}

// allBytes is every byte but NUL, including dash's internal control
// characters (0x81-0x88) and bytes that are not UTF-8.
func allBytes() string {
	b := make([]byte, 0, 255)
	for c := 1; c < 256; c++ {
		b = append(b, byte(c))
	}
	return string(b)
}

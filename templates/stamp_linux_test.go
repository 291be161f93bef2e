package templates

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A stamp taken by Install holds while nobody touches the file, and any
// change a hand can make (content, mode, a replaced file with the same
// content) ends it.
func TestStampUntouched(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		touch func(t *testing.T, path string)
		want  bool
	}{
		{"untouched", func(*testing.T, string) {}, true},
		{"content appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("x"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"mode changed", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"replaced by the same content", func(t *testing.T, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, []byte("a\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := File{Destination: filepath.Join(dir, "out"), Perms: 0o644, Timeout: time.Second}
			changed, stamp, err := InstallStamped(ctx, []byte("a\n"), f)
			if err != nil || !changed {
				t.Fatalf("install: changed %v, %v", changed, err)
			}
			// An unchanged install stamps the file it found.
			if _, again, err := InstallStamped(ctx, []byte("a\n"), f); err != nil || again != stamp {
				t.Fatalf("unchanged install: stamp %+v, want %+v (%v)", again, stamp, err)
			}
			tc.touch(t, f.Destination)
			if got := stamp.Untouched(f.Destination); got != tc.want {
				t.Fatalf("Untouched = %v, want %v", got, tc.want)
			}
		})
	}
	if (Stamp{}).Untouched(t.TempDir()) {
		t.Fatal("the zero stamp must never pass")
	}
}

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

// An install vouches for its stamp only when nothing wrote to the file
// between the stat before its rename and the stat after: a write that
// lands in between must not be stamped as the install's content, or the
// drift watcher would never put it right.
func TestUnwrittenSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("installed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stat := func() Stamp {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := stampOf(fi)
		if !ok {
			t.Fatal("no stamp on linux")
		}
		return s
	}
	cases := []struct {
		name   string
		change func(t *testing.T)
		vouch  bool
	}{
		{"nothing", func(*testing.T) {}, true},
		{"renamed in place, as an install does", func(t *testing.T) {
			moved := path + ".moved"
			if os.Rename(path, moved) != nil || os.Rename(moved, path) != nil {
				t.Fatal("rename")
			}
		}, true},
		{"mode fixed", func(t *testing.T) {
			if err := os.Chmod(path, 0o640); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"written, same size", func(t *testing.T) {
			if err := os.WriteFile(path, []byte("hand edit\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"written, other size", func(t *testing.T) {
			if err := os.WriteFile(path, []byte("hand\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"replaced", func(t *testing.T) {
			other := path + ".other"
			if os.WriteFile(other, []byte("installed\n"), 0o600) != nil || os.Rename(other, path) != nil {
				t.Fatal("replace")
			}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := stat()
			tc.change(t)
			after := stat()
			got := unwrittenSince(before, after)
			if vouched := got != (Stamp{}); vouched != tc.vouch {
				t.Errorf("unwrittenSince = %+v, want vouched %v", got, tc.vouch)
			}
			if tc.vouch && got != after {
				t.Errorf("vouched for %+v, want the stamp after, %+v", got, after)
			}
		})
	}
	if got := unwrittenSince(Stamp{}, stat()); got != (Stamp{}) {
		t.Errorf("with no stamp before: %+v, want none", got)
	}
}

package templates

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// What an install wrote is known without reading the file again, for as
// long as the file carries the install's stamp; an edit right after the
// install, even of the same size and with the old modification time put
// back, is read and undone.
func TestKnownContent(t *testing.T) {
	ctx := context.Background()
	const installed, edited = "v1 aaaa\n", "v1 bbbb\n" // the same size
	writeInPlace := func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte(edited), 0); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		edit func(t *testing.T, path string)
		want string // what a read then finds
	}{
		{"untouched", func(*testing.T, string) {}, installed},
		{"written in place at once, same size", writeInPlace, edited},
		{"written in place, modification time put back", func(t *testing.T, path string) {
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			writeInPlace(t, path)
			if err := os.Chtimes(path, before.ModTime(), before.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, edited},
		{"replaced by another file of the same size", func(t *testing.T, path string) {
			if err := os.WriteFile(path+".new", []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}, edited},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := File{Destination: filepath.Join(t.TempDir(), "out"), Perms: 0o644, Timeout: time.Second}
			if changed, _, err := InstallStamped(ctx, []byte(installed), f); err != nil || !changed {
				t.Fatalf("install: changed %v, %v", changed, err)
			}
			tc.edit(t, f.Destination)

			d, err := f.openDir(false)
			if err != nil {
				t.Fatal(err)
			}
			in, err := d.readKnown()
			d.close()
			if err != nil {
				t.Fatal(err)
			}
			in.close()
			if string(in.content) != tc.want {
				t.Fatalf("read %q, want %q", in.content, tc.want)
			}
			if fromMemory := in.file == nil; fromMemory != (tc.want == installed) {
				t.Fatalf("read from memory: %v, want %v", fromMemory, tc.want == installed)
			}
			if got, _, err := ReadInstalled(f); err != nil || string(got) != tc.want {
				t.Fatalf("ReadInstalled = %q, %v; want %q", got, err, tc.want)
			}
			changed, _, err := InstallStamped(ctx, []byte(installed), f)
			if err != nil || changed != (tc.want != installed) {
				t.Fatalf("install again: changed %v, %v; want changed %v", changed, err, tc.want != installed)
			}
			if got, _ := os.ReadFile(f.Destination); string(got) != installed {
				t.Fatalf("file holds %q after the install, want %q", got, installed)
			}
		})
	}
}

// An unchanged file known from memory still gets its mode back, through a
// descriptor.
func TestKnownContentModeRestored(t *testing.T) {
	ctx := context.Background()
	f := File{Destination: filepath.Join(t.TempDir(), "out"), Perms: 0o640, Timeout: time.Second}
	if _, _, err := InstallStamped(ctx, []byte("a\n"), f); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.Destination, 0o666); err != nil {
		t.Fatal(err)
	}
	changed, stamp, err := InstallStamped(ctx, []byte("a\n"), f)
	if err != nil || changed {
		t.Fatalf("install: changed %v, %v; want unchanged", changed, err)
	}
	st, err := os.Stat(f.Destination)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", st.Mode().Perm(), err)
	}
	if !stamp.Untouched(f.Destination) {
		t.Fatal("the stamp returned is not the file's after its mode was restored")
	}
	// Known again: the next install finds it in memory.
	d, err := f.openDir(false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	in, err := d.readKnown()
	if err != nil || in.file != nil {
		t.Fatalf("read again: from memory %v, %v", in.file == nil, err)
	}
}

// A known file read through a directory since replaced by a link is still
// that very file, so reading it is allowed; writing through the link is
// not.
func TestKnownContentWriteStaysConfined(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	f := File{Root: root, Destination: filepath.Join(root, "etc", "app", "out"), Perms: 0o644, Timeout: time.Second}
	if _, _, err := InstallStamped(ctx, []byte("a\n"), f); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(root, "elsewhere")
	if err := os.Rename(filepath.Join(root, "etc", "app"), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(root, "etc", "app")); err != nil {
		t.Fatal(err)
	}
	if got, _, err := ReadInstalled(f); err != nil || string(got) != "a\n" {
		t.Fatalf("ReadInstalled = %q, %v; want the known file", got, err)
	}
	if _, _, err := InstallStamped(ctx, []byte("b\n"), f); !errors.Is(err, ErrConfined) {
		t.Fatalf("install through the link: %v, want ErrConfined", err)
	}
	if got, _ := os.ReadFile(filepath.Join(real, "out")); string(got) != "a\n" {
		t.Fatalf("the file behind the link holds %q, want it untouched", got)
	}
}

// A file this process installed is not read for a File whose root it is
// not beneath: ReadInstalled refuses it as an install would, known or not.
func TestKnownContentKeepsTheRoot(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dest := filepath.Join(root, "etc", "out")
	if _, err := Install(ctx, []byte("SECRET=1\n"), File{Root: root, Destination: dest, Perms: 0o600, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	other := File{Root: t.TempDir(), Destination: dest, Perms: 0o600, Timeout: time.Second}
	if b, _, err := ReadInstalled(other); !errors.Is(err, ErrConfined) {
		t.Fatalf("ReadInstalled beneath another root: %q, %v; want ErrConfined", b, err)
	}
}

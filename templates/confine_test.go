package templates

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Every install and check stays beneath its root: a destination naming
// ".." is refused, a directory on the way replaced by a symbolic link is
// not written through, and a symbolic link at the destination is replaced,
// never followed (its target keeps its content and mode).
func TestInstallConfined(t *testing.T) {
	const content = "SECRET=hunter2\n"
	cases := []struct {
		name string
		// setup prepares root and outside, and returns the destination.
		setup func(t *testing.T, root, outside string) string
		check bool // Check instead of Install
		// wantErr: refused; else the destination must be a regular file
		// holding content.
		wantErr bool
	}{
		{"dot-dot out of the root", func(t *testing.T, root, outside string) string {
			return filepath.Join(root, "etc", "..", "..", filepath.Base(outside), "env")
		}, false, true},
		{"parent directory is a link out", func(t *testing.T, root, outside string) string {
			mkdir(t, filepath.Join(root, "etc"))
			symlink(t, outside, filepath.Join(root, "etc", "app"))
			return filepath.Join(root, "etc", "app", "env")
		}, false, true},
		{"grandparent directory is a link out", func(t *testing.T, root, outside string) string {
			symlink(t, outside, filepath.Join(root, "etc"))
			return filepath.Join(root, "etc", "app", "env")
		}, false, true},
		{"parent directory is a link inside the root", func(t *testing.T, root, outside string) string {
			mkdir(t, filepath.Join(root, "etc", "cron.d"))
			symlink(t, filepath.Join(root, "etc", "cron.d"), filepath.Join(root, "etc", "app"))
			return filepath.Join(root, "etc", "app", "env")
		}, false, true},
		{"check with the parent a link out", func(t *testing.T, root, outside string) string {
			mkdir(t, filepath.Join(root, "etc"))
			symlink(t, outside, filepath.Join(root, "etc", "app"))
			return filepath.Join(root, "etc", "app", "env")
		}, true, true},
		{"destination is a link to a different file", func(t *testing.T, root, outside string) string {
			writeFile(t, filepath.Join(outside, "target"), "other\n", 0o644)
			mkdir(t, filepath.Join(root, "etc", "app"))
			symlink(t, filepath.Join(outside, "target"), filepath.Join(root, "etc", "app", "env"))
			return filepath.Join(root, "etc", "app", "env")
		}, false, false},
		{"destination is a link to the same content", func(t *testing.T, root, outside string) string {
			writeFile(t, filepath.Join(outside, "target"), content, 0o644)
			mkdir(t, filepath.Join(root, "etc", "app"))
			symlink(t, filepath.Join(outside, "target"), filepath.Join(root, "etc", "app", "env"))
			return filepath.Join(root, "etc", "app", "env")
		}, false, false},
		{"missing directories are created", func(t *testing.T, root, outside string) string {
			return filepath.Join(root, "etc", "app", "conf.d", "env")
		}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			mkdir(t, root)
			mkdir(t, outside)
			dest := tc.setup(t, root, outside)
			before := snapshot(t, outside)
			f := File{Root: root, Destination: dest, Perms: 0o600}
			var err error
			if tc.check {
				err = Check(context.Background(), []byte(content), f)
			} else {
				_, err = Install(context.Background(), []byte(content), f)
			}
			if tc.wantErr {
				if !errors.Is(err, ErrConfined) {
					t.Errorf("err = %v, want ErrConfined", err)
				}
			} else if err != nil {
				t.Fatalf("install: %v", err)
			}
			if after := snapshot(t, outside); !equalSnapshots(before, after) {
				t.Errorf("written outside the root: before %v, after %v", before, after)
			}
			if tc.wantErr {
				return
			}
			st, err := os.Lstat(dest)
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
				t.Fatalf("destination after install: %v, %v; want a regular file of mode 0600", st, err)
			}
			if got, _ := os.ReadFile(dest); string(got) != content {
				t.Errorf("destination holds %q, want %q", got, content)
			}
		})
	}
}

// snapshot is every name below dir with its mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, _ := os.ReadFile(p)
		if d.IsDir() {
			b = nil
		}
		out[p] = info.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalSnapshots(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkInstallUnchanged is the hot path of every run: an install that
// finds the same content, three directories below the root.
func BenchmarkInstallUnchanged(b *testing.B) {
	root := b.TempDir()
	f := File{Root: root, Destination: filepath.Join(root, "etc", "app", "conf.d", "env"), Perms: 0o640}
	content := []byte("PORT=8080\n")
	if _, err := Install(context.Background(), content, f); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if changed, err := Install(context.Background(), content, f); err != nil || changed {
			b.Fatal(changed, err)
		}
	}
}

package install

import (
	"os"
	"path/filepath"
	"testing"
)

// A destination replaced by a symbolic link is restored as a file of its
// own: the link's target keeps its content and its mode, even when it
// holds the installed content (a mode-only drift would chmod it).
func TestFilesRestoreDoesNotFollowLink(t *testing.T) {
	const want = "SECRET=hunter2\n"
	for _, targetContent := range []string{want, "other\n"} {
		t.Run(map[bool]string{true: "target with the same content", false: "target with other content"}[targetContent == want], func(t *testing.T) {
			h := newFilesHarness(t)
			f := h.file("site.conf")
			f.Root = h.dir
			h.install(f, want)
			h.run()
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, []byte(targetContent), 0o644); err != nil {
				t.Fatal(err)
			}
			ev := h.await(f.Destination, func() {
				link := f.Destination + ".link"
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(link, f.Destination); err != nil {
					t.Fatal(err)
				}
			})
			if ev.err != nil {
				t.Fatalf("restore: %v", ev.err)
			}
			filesEventually(t, "a regular file back", func() bool {
				st, err := os.Lstat(f.Destination)
				return err == nil && st.Mode().IsRegular() && st.Mode().Perm() == 0o640 && fileHolds(f.Destination, []byte(want))
			})
			st, err := os.Stat(target)
			if err != nil || st.Mode().Perm() != 0o644 || !fileHolds(target, []byte(targetContent)) {
				t.Errorf("the link's target changed: %v %v, want mode 0644 and its content", st.Mode(), err)
			}
		})
	}
}

// A directory on the way replaced by a link out is not restored through:
// the restore fails, and nothing is written at the link's target.
func TestFilesRestoreRefusesLinkedDirectory(t *testing.T) {
	h := newFilesHarness(t)
	f := h.file("conf.d/site.conf")
	f.Root = h.dir
	h.install(f, "SECRET=hunter2\n")
	h.run()
	outside := t.TempDir()
	ev := h.await(f.Destination, func() {
		dir := filepath.Dir(f.Destination)
		if err := os.Rename(dir, dir+".old"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, dir); err != nil {
			t.Fatal(err)
		}
	})
	if ev.err == nil {
		t.Error("the restore through a linked directory succeeded, want it refused")
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("written through the link: %v", entries)
	}
}

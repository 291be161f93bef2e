package install

import (
	"os"
	"testing"
)

// Without a watcher, Files installs and changes files as usual, holds no
// inotify instance, and Run ends with its context.
func TestFilesWithoutWatcher(t *testing.T) {
	h := newFilesHarness(t, WithoutWatcher())
	if h.files.w != nil {
		t.Fatal("WithoutWatcher: a watcher was created")
	}
	h.run()
	f := h.file("upstreams.conf")
	h.install(f, "a\n")
	h.install(f, "b\n")
	got, err := os.ReadFile(f.Destination)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "b\n" {
		t.Fatalf("file holds %q, want %q", got, "b\n")
	}
}

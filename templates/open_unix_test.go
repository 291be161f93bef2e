//go:build unix

package templates

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A FIFO swapped in for the destination between its lstat and its open
// cannot hold a run: the open returns at once, where a plain open for
// reading waits for a writer forever.
func TestOpenDoesNotWaitOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "out"))
	d, err := File{Destination: filepath.Join(dir, "out"), Perms: 0o644}.openDir(false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	opened := make(chan error, 1)
	go func() {
		f, err := d.open(d.base, os.O_RDONLY, 0)
		if err == nil {
			_ = f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("open of a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open of a FIFO still waiting after 10s: it would hold the run")
	}
}

// The installed file has exactly the template's permissions, whatever the
// umask took from the staged file's creation, and with an owner to set.
func TestInstallPerms(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	cases := []struct {
		name         string
		perms        fs.FileMode
		owner, group string
	}{
		{"kept by the umask", 0o640, "", ""},
		{"private", 0o600, "", ""},
		{"group write, which the umask takes", 0o664, "", ""},
		{"with an owner and group to set", 0o644, uid, gid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			f := File{Destination: dest, Perms: tc.perms, Owner: tc.owner, Group: tc.group, Timeout: time.Second}
			if _, err := Install(context.Background(), []byte("A=1\n"), f); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.perms {
				t.Fatalf("mode %v, want %v", got, tc.perms)
			}
		})
	}
}

package templates

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/patchbay/patchbay/internal/errkind"
)

// ErrConfined: a destination is outside its root, or reached through a
// symbolic link; nothing was written.
var ErrConfined = errkind.New(errkind.Input, "templates: destination not confined")

// ErrNotRegular: something other than a regular file (a symbolic link, a
// directory) is at the destination; an install replaces it, never follows it.
var ErrNotRegular = errkind.New(errkind.Input, "templates: not a regular file")

// destDir is a destination's directory, opened beneath the File's root
// without following a symbolic link on the way: every install, staging,
// check and restore works through it, so that a directory replaced by a
// link after the path was checked cannot redirect a write (Go's os.Root
// confines each call; the walk refuses even links that stay inside).
type destDir struct {
	root *os.Root // the destination's directory
	path string   // its path, for commands and messages
	base string   // the destination's name in it
}

// openDir opens f.Destination's directory beneath f.Root ("" for "/"),
// creating the missing directories (mode 0755) when create is set.
func (f File) openDir(create bool) (*destDir, error) {
	top, rel, err := f.beneathRoot()
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(top)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(top, 0o755); err != nil { // the operator's root: its own links are the operator's
			return nil, fmt.Errorf("templates: create root %s: %w", top, err)
		}
		r, err = os.OpenRoot(top)
	}
	if err != nil {
		return nil, fmt.Errorf("templates: open root %s: %w", top, err)
	}
	dir := top
	if parent := filepath.Dir(rel); parent != "." {
		for _, name := range strings.Split(parent, string(filepath.Separator)) {
			next, err := openSubdir(r, name, create)
			_ = r.Close() // a directory handle, nothing written through it
			dir = filepath.Join(dir, name)
			switch {
			case errors.Is(err, errLinkOnWay) || errors.Is(err, errSwapped):
				return nil, fmt.Errorf("%w: %s: %s %v", ErrConfined, f.Destination, dir, err)
			case err != nil:
				return nil, fmt.Errorf("templates: %s: %s: %w", f.Destination, dir, err)
			}
			r = next
		}
	}
	return &destDir{root: r, path: dir, base: filepath.Base(rel)}, nil
}

// beneathRoot returns f's root ("/" for "") and f.Destination relative to
// it; ErrConfined when the destination, as written, is not beneath it.
func (f File) beneathRoot() (top, rel string, err error) {
	top = cmp.Or(f.Root, string(filepath.Separator))
	rel, err = filepath.Rel(top, f.Destination)
	if err != nil || !filepath.IsAbs(f.Destination) || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", "", fmt.Errorf("%w: %s is not beneath the root %s; give a destination without \"..\"", ErrConfined, f.Destination, top)
	}
	return top, rel, nil
}

// Why a directory on the way is refused.
var (
	errLinkOnWay = errors.New("is a symbolic link; patchbay never writes through one: make it a directory, or give the real path as destination")
	errSwapped   = errors.New("was replaced while being opened")
)

// openSubdir opens the directory name in r, refusing a symbolic link, and
// one swapped in between the check and the open.
func openSubdir(r *os.Root, name string, create bool) (*os.Root, error) {
	before, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := r.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		before, err = r.Lstat(name)
	}
	switch {
	case err != nil:
		return nil, err
	case before.Mode()&fs.ModeSymlink != 0:
		return nil, errLinkOnWay
	case !before.IsDir():
		return nil, fmt.Errorf("not a directory")
	}
	sub, err := r.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	now, err := sub.Stat(".")
	if err != nil || !os.SameFile(before, now) {
		_ = sub.Close()
		return nil, errSwapped
	}
	return sub, nil
}

func (d *destDir) close() { _ = d.root.Close() }

// name is the path of name in d, for commands and messages.
func (d *destDir) name(name string) string { return filepath.Join(d.path, name) }

// openInstalled opens the regular file at the destination: fs.ErrNotExist
// when nothing is there, ErrNotRegular when something else is (a symbolic
// link is never followed: its target is not the destination).
func (d *destDir) openInstalled() (*os.File, error) {
	before, err := d.lstatInstalled()
	if err != nil {
		return nil, err
	}
	file, _, err := d.openSame(before)
	return file, err
}

// lstatInstalled is the lstat of the regular file at the destination.
func (d *destDir) lstatInstalled() (fs.FileInfo, error) {
	before, err := d.root.Lstat(d.base)
	if err != nil {
		return nil, err
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, d.name(d.base), kindOf(before))
	}
	return before, nil
}

// openSame opens the destination, and its stat, if it is still the file
// before described.
func (d *destDir) openSame(before fs.FileInfo) (*os.File, fs.FileInfo, error) {
	file, err := d.open(d.base, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	now, err := file.Stat()
	if err != nil || !os.SameFile(before, now) {
		_ = file.Close() // read only
		return nil, nil, fmt.Errorf("%w: %s was replaced while being read", ErrNotRegular, d.name(d.base))
	}
	return file, now, nil
}

// open opens name in d with O_NONBLOCK: a FIFO swapped in for a file
// between its lstat and its open cannot hold a run at the open, and Go
// does not try to put the file on its network poller (four system calls
// each time, all failing for a regular file, whose reads and writes
// O_NONBLOCK leaves as they are).
func (d *destDir) open(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return d.root.OpenFile(name, flag|syscall.O_NONBLOCK, perm)
}

func kindOf(info fs.FileInfo) string {
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return "a symbolic link"
	case info.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// ReadInstalled reads the regular file at f.Destination through the same
// confinement as Install, with its mode: fs.ErrNotExist when nothing is
// there, ErrNotRegular when something else is, ErrConfined when the way
// to it leaves f.Root or crosses a symbolic link. A file this process last
// read or wrote, and that still carries the stamp it had then, is known at
// the cost of one lstat once the destination is known to be beneath
// f.Root: whatever way leads to it, it is that very file, and Install
// confines every write of its own.
func ReadInstalled(f File) ([]byte, fs.FileMode, error) {
	if _, _, err := f.beneathRoot(); err != nil {
		return nil, 0, err
	}
	if content, mode, ok := known.unchanged(f.Destination); ok {
		return bytes.Clone(content), mode, nil
	}
	d, err := f.openDir(false)
	if err != nil {
		return nil, 0, err
	}
	defer d.close()
	in, err := d.readKnown()
	if err != nil {
		return nil, 0, err
	}
	in.close()
	return bytes.Clone(in.content), in.mode, nil // the caller's to keep: the known content is shared
}

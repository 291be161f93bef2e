package templates

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// known remembers, for each destination, the content this process last
// read or installed there and the file's stamp then. While the file still
// carries that stamp, reading it again would return the same bytes: a run's
// render and its install each cost one lstat instead of an open and a read.
// The stamp is taken by a stat, and every write, chmod, chown or rename
// after it gives the file a new change time: on Linux from 6.13 (ext4, xfs,
// btrfs, tmpfs), a change that follows a stat gets a time of its own even
// within one clock tick, so an edit of the same size cannot pass for the
// remembered file.
var known = &knownFiles{files: map[string]knownFile{}}

type knownFile struct {
	content []byte
	stamp   Stamp
}

// knownFiles is shared by every install of the process: a listener's runs
// and its drift restores; its lock guards only the map.
type knownFiles struct {
	mu    sync.Mutex
	files map[string]knownFile
}

// remember records that path holds content while it carries stamp.
func (k *knownFiles) remember(path string, content []byte, stamp Stamp) {
	if stamp == (Stamp{}) {
		return // no change time on this platform: nothing to trust it by
	}
	kf := knownFile{content: bytes.Clone(content), stamp: stamp}
	if kf.content == nil {
		kf.content = []byte{} // an empty file is a file
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.files[path] = kf
}

// lookup returns what path held when remembered, if stamp (the path's
// lstat now) shows it untouched since. The content is shared: callers
// never write to it.
func (k *knownFiles) lookup(path string, stamp Stamp) ([]byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kf, ok := k.files[path]
	if !ok || stamp == (Stamp{}) || kf.stamp != stamp {
		return nil, false
	}
	return kf.content, true
}

// unchanged is what path held when remembered, and its mode, if its
// lstat now shows it untouched since.
func (k *knownFiles) unchanged(path string) ([]byte, fs.FileMode, bool) {
	path = filepath.Clean(path)
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, 0, false
	}
	s, ok := stampOf(fi)
	if !ok {
		return nil, 0, false
	}
	content, ok := k.lookup(path, s)
	return content, fi.Mode(), ok
}

// installed is what the destination holds.
type installed struct {
	content []byte
	stamp   Stamp
	mode    fs.FileMode
	file    *os.File // open when it was read, for the caller to close; nil when known
}

// readKnown returns the regular file at the destination: from memory when
// this process read or wrote it last and it carries the same stamp, else
// read through a descriptor (never following a symbolic link) and
// remembered. fs.ErrNotExist when nothing is there, ErrNotRegular when
// something else is.
func (d *destDir) readKnown() (installed, error) {
	path := d.name(d.base)
	before, err := d.lstatInstalled()
	if err != nil {
		return installed{}, err
	}
	if s, ok := stampOf(before); ok {
		if content, ok := known.lookup(path, s); ok {
			return installed{content: content, stamp: s, mode: before.Mode()}, nil
		}
	}
	file, now, err := d.openSame(before) // stat before the read: a write during it changes the stamp remembered
	if err != nil {
		return installed{}, err
	}
	b, err := io.ReadAll(file)
	if err != nil {
		_ = file.Close() // read only
		return installed{}, err
	}
	s, _ := stampOf(now)
	known.remember(path, b, s)
	if b == nil {
		b = []byte{} // an empty file is a file
	}
	return installed{content: b, stamp: s, mode: now.Mode(), file: file}, nil
}

// close closes the file if it was read.
func (in installed) close() {
	if in.file != nil {
		_ = in.file.Close() // read, and its mode fixed through it
	}
}

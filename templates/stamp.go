package templates

import (
	"io/fs"
	"os"
)

// Stamp is a file's identity and last change as the file system reports
// them (device, inode, size, mode, modification and change times). Any
// write, chmod, chown or rename of the file gives it a new change time, so
// a path that still shows the stamp Install took is the file Install put
// there, untouched since.
type Stamp struct {
	dev, ino     uint64
	size         int64
	mode         fs.FileMode
	mtime, ctime int64
}

// Untouched reports whether the file at path (not following a final
// symbolic link) still carries stamp s; false when it cannot tell.
func (s Stamp) Untouched(path string) bool {
	if s == (Stamp{}) {
		return false
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	got, ok := stampOf(fi)
	return ok && got == s
}

// stampOf is fi's stamp; false where the platform does not expose a change
// time.
func stampOf(fi fs.FileInfo) (Stamp, bool) { return platformStamp(fi) }

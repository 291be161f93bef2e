package templates

import (
	"io/fs"
	"syscall"
)

func platformStamp(fi fs.FileInfo) (Stamp, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Stamp{}, false
	}
	return Stamp{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mode: fi.Mode(),
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, true
}

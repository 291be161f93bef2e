package dev

import (
	"os"
	"syscall"
)

// childProcAttr puts a child in its own process group, so that Ctrl-C
// reaches patchbay alone and it stops the child last (listeners deregister
// through it first), and kills the child if patchbay dies without that.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// lockFile takes an exclusive lock on f without waiting; the kernel drops
// it when the process ends, however it ends.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

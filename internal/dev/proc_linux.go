package dev

import "syscall"

// childProcAttr puts a child in its own process group, so that Ctrl-C
// reaches patchbay alone and it stops the child last (listeners deregister
// through it first), and kills the child if patchbay dies without that.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

//go:build !linux

package dev

import "syscall"

// childProcAttr puts a child in its own process group, so that Ctrl-C
// reaches patchbay alone and it stops the child last.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

//go:build !linux

package dev

import (
	"os"
	"syscall"
)

// childProcAttr puts a child in its own process group, so that Ctrl-C
// reaches patchbay alone and it stops the child last.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// lockFile does not lock: the port checks alone find a second dev here.
func lockFile(*os.File) error { return nil }

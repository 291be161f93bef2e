//go:build linux

package listener

import (
	"os/exec"
	"syscall"
)

// ownByListener has the kernel stop HAProxy's master if the listener dies
// without stopping it (kill -9): a new listener starts its own, and an
// orphan sharing the port (SO_REUSEPORT) would serve stale servers.
func ownByListener(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

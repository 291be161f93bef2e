//go:build unix

package templates

import (
	"errors"
	"os/exec"
	"syscall"
)

// contain runs cmd in a process group of its own and makes cancelling it
// (timeout, shutdown) kill the whole group: `sh -c` and what it started in
// the background die with it instead of running on as orphans.
func contain(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) { // the group is gone already
			return nil
		}
		return err
	}
}

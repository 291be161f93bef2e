//go:build !unix

package templates

import "os/exec"

// contain has no process groups to use here: cancelling kills the command
// alone.
func contain(*exec.Cmd) {}

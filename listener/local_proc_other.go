//go:build !linux

package listener

import "os/exec"

// ownByListener: only Linux can tie a child's life to its parent's.
func ownByListener(*exec.Cmd) {}

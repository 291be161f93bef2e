//go:build unix

package templates

import (
	"syscall"
	"testing"
)

// mkfifo makes a named pipe at path and returns path.
func mkfifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

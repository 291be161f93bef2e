//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package templates

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockStaged takes an exclusive flock on a file just staged. flock, not
// fcntl: its lock belongs to the open file, so even another open of the
// same file in this process sees it, and a kill -9 releases it.
func lockStaged(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// tryLockStaged reports whether no install holds f, keeping the lock if so.
func tryLockStaged(f *os.File) (free bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return true, nil
}

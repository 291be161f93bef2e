package templates

import (
	"errors"
	"testing"
	"time"
)

// A sweep blocked in its directory I/O (a hung mount) holds up no install
// of another destination, and a second install of its own destination does
// not wait for it either: the sweeper's lock guards only its bookkeeping.
func TestSweepHoldsNoLockAcrossRemove(t *testing.T) {
	started, release := make(chan string, 2), make(chan struct{})
	s := newSweeper(func(d *destDir) ([]string, error) {
		started <- d.base
		if d.base == "slow.conf" {
			<-release
		}
		return nil, nil
	})
	slowDone := make(chan struct{})
	go func() { // owned by the test: waited for through slowDone
		defer close(slowDone)
		s.once(File{Destination: "/mnt/hung/slow.conf"}, &destDir{base: "slow.conf"})
	}()
	if got := <-started; got != "slow.conf" {
		t.Fatalf("first sweep of %s, want slow.conf", got)
	}
	others := make(chan struct{})
	go func() { // owned by the test: waited for below
		defer close(others)
		s.once(File{Destination: "/etc/app/fast.conf"}, &destDir{base: "fast.conf"})
		s.once(File{Destination: "/mnt/hung/slow.conf"}, &destDir{base: "slow.conf"}) // under way: skipped
	}()
	select {
	case <-others:
	case <-time.After(30 * time.Second): // a deadline for failing, not a wait for success
		close(release)
		<-slowDone
		t.Fatal("a sweep blocked in I/O held up another destination's install: the lock is held across remove")
	}
	if got := <-started; got != "fast.conf" {
		t.Fatalf("second sweep of %s, want fast.conf", got)
	}
	close(release)
	<-slowDone
	if len(started) != 0 {
		t.Fatalf("slow.conf swept twice: %s", <-started)
	}
}

// A failed sweep is tried again at the next install; a done one is not.
func TestSweepRetriesAFailure(t *testing.T) {
	calls, fail := 0, true
	s := newSweeper(func(*destDir) ([]string, error) {
		calls++
		if fail {
			return nil, errors.New("permission denied")
		}
		return nil, nil
	})
	f, d := File{Destination: "/etc/app/a.conf"}, &destDir{base: "a.conf"}
	s.once(f, d)
	fail = false
	s.once(f, d)
	s.once(f, d)
	if calls != 2 {
		t.Fatalf("%d sweeps, want 2: one failed, one done, then none", calls)
	}
}

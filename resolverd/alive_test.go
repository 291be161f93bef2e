package resolverd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// gatedRegistry is the real registry whose Snapshot, once armed, blocks
// until release is closed: a pass wedged in a Consul request.
type gatedRegistry struct {
	Registry
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRegistry) Snapshot(ctx context.Context) (*binding.Snapshot, error) {
	if g.armed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Registry.Snapshot(ctx)
}

func aliveWithin(l *Loop, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Alive(ctx)
}

// runLoop runs l until the test ends or stop is called.
func runLoop(t *testing.T, l *Loop) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// The loop answers probes while it leads and waits for a change, and
// while it stands by; not before Run, nor while a pass is stuck in a
// Consul request, until that returns.
func TestLoopAliveProbe(t *testing.T) {
	f := newLoopFixture(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := &gatedRegistry{Registry: f.reg, entered: make(chan struct{}, 1), release: make(chan struct{})}
	passes := make(chan Pass, 100)
	leader := NewLoop(reg, f.nc, WithHolder("a"), WithDebounce(0, 0), WithLogger(log), WithPassHook(func(p Pass) { passes <- p }))
	if err := aliveWithin(leader, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Alive before Run = %v, want a deadline exceeded", err)
	}
	stopLeader := runLoop(t, leader)
	var once sync.Once
	release := func() { once.Do(func() { close(reg.release) }) }
	t.Cleanup(release) // before the loop's cleanup stops it
	select {
	case <-passes:
	case <-time.After(20 * time.Second):
		t.Fatal("the loop never led")
	}
	testcluster.Eventually(t, 10*time.Second, "the leader answers while waiting for a change", func() bool {
		return aliveWithin(leader, time.Second) == nil
	})

	standby := NewLoop(f.reg, f.nc, WithHolder("b"), WithLogger(log))
	runLoop(t, standby)
	testcluster.Eventually(t, 10*time.Second, "the standby answers while standing by", func() bool {
		return aliveWithin(standby, time.Second) == nil
	})

	reg.armed.Store(true)
	if _, err := f.reg.SetDatastore(context.Background(), "default", "PRIMARY_DATABASE_URL", "postgres://wedged/app"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reg.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the change never started a pass")
	}
	if err := aliveWithin(leader, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Alive of a loop stuck in a pass = %v, want a deadline exceeded", err)
	}
	reg.armed.Store(false)
	release()
	testcluster.Eventually(t, 10*time.Second, "the unstuck leader answers again", func() bool {
		return aliveWithin(leader, time.Second) == nil
	})
	// The leader stops first: its lock passes to the standby at once,
	// whose stop then does not wait out consul/api's blocking lock query.
	stopLeader()
}

package listener_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// gatedBus is the real bus whose Subscribe to a subject containing match
// blocks until release is closed: a loop wedged in a call.
type gatedBus struct {
	listener.Bus
	match   string
	entered chan string
	release chan struct{}
}

func (b *gatedBus) Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	if strings.Contains(subject, b.match) {
		b.entered <- subject
		<-b.release
	}
	return b.Bus.Subscribe(subject, cb)
}

// aliveWithin is Alive with a deadline of d.
func aliveWithin(l interface{ Alive(context.Context) error }, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Alive(ctx)
}

// A running listener answers probes; one whose supervisor loop is stuck
// (here in a NATS subscribe after a reload) does not, until it is unstuck.
func TestAliveProbeOfRunningListener(t *testing.T) {
	c := newCluster(t)
	c.publish("id: web\n")
	bus := &gatedBus{Bus: c.nc, match: "wedge", entered: make(chan string, 1), release: make(chan struct{})}
	c.nodeBus = bus
	n := c.startListener("web-1", "{}", "  - service: web\n")
	var once sync.Once
	release := func() { once.Do(func() { close(bus.release) }) }
	t.Cleanup(release) // before the listener's own cleanup stops it

	testcluster.Eventually(t, 20*time.Second, "the running listener answers a probe", func() bool {
		return aliveWithin(n.l, time.Second) == nil
	})

	next := *n.cfg
	next.Services = append(slices.Clone(n.cfg.Services), listener.ServiceConfig{Service: "wedge"})
	n.l.Reload(&next)
	select {
	case subj := <-bus.entered:
		t.Logf("supervisor loop stuck subscribing to %s", subj)
	case <-time.After(20 * time.Second):
		t.Fatal("the reload never subscribed to the new service's subject")
	}
	if err := aliveWithin(n.l, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Alive of a stuck listener = %v, want a deadline exceeded", err)
	}

	release()
	testcluster.Eventually(t, 20*time.Second, "the unstuck listener answers again", func() bool {
		return aliveWithin(n.l, time.Second) == nil
	})
}

// The queue's loop answers probes while idle and while a provision runs
// (runs have their own goroutine), not before Run nor while the loop
// itself is stuck; and a probe is not activity to the queue's observer.
func TestQueueAliveProbe(t *testing.T) {
	var observed atomic.Int64
	var last atomic.Pointer[listener.QueueState]
	var stuck atomic.Bool
	entered, unstick := make(chan struct{}, 1), make(chan struct{})
	q := listener.NewQueue(listener.WithQuiet(0, 0), listener.WithQueueObserver(func(s listener.QueueState) {
		observed.Add(1)
		last.Store(&s)
		if stuck.Load() {
			entered <- struct{}{}
			<-unstick
		}
	}))
	if err := aliveWithin(q, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Alive before Run = %v, want a deadline exceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	running, finish := make(chan struct{}, 1), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- q.Run(ctx, func(context.Context) error { running <- struct{}{}; <-finish; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })

	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the first run never started")
	}
	if err := aliveWithin(q, 5*time.Second); err != nil {
		t.Fatalf("Alive during a run = %v", err)
	}
	close(finish)
	testcluster.Eventually(t, 10*time.Second, "the run finished", func() bool {
		s := last.Load()
		return s != nil && !s.Running && !s.Pending
	})
	testcluster.Eventually(t, 10*time.Second, "the idle queue answers", func() bool {
		return aliveWithin(q, time.Second) == nil
	})
	before := observed.Load()
	for range 5 {
		if err := aliveWithin(q, 5*time.Second); err != nil {
			t.Fatalf("Alive of the idle queue = %v", err)
		}
	}
	if got := observed.Load(); got != before {
		t.Errorf("probes called the observer %d times; a probe is not activity", got-before)
	}

	stuck.Store(true)
	q.Pause() // the loop reports the change to the observer, which sticks
	<-entered
	if err := aliveWithin(q, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Alive of a stuck queue loop = %v, want a deadline exceeded", err)
	}
	stuck.Store(false)
	close(unstick)
	if err := aliveWithin(q, 5*time.Second); err != nil {
		t.Fatalf("Alive once unstuck = %v", err)
	}
}

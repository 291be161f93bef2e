package resolverd

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
)

// Every bindings event a loop with a signer publishes carries a signature
// of its key over the event's subject and body, as the listener checks it.
func TestLoopSignsEvents(t *testing.T) {
	f := newLoopFixture(t)
	seed, public, err := events.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := events.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := events.NewVerifier(public)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *nats.Msg, 1000)
	sub, err := f.nc.ChanSubscribe(events.BindingsSubject("default", "*"), msgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	loop := NewLoop(f.reg, f.nc, WithHolder("signer"), WithDebounce(0, 0), WithSigner(signer),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	var wg sync.WaitGroup
	wg.Go(func() { _ = loop.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The first pass binds every example service: one event each.
	services := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(services) < 3 {
		select {
		case m := <-msgs:
			if err := verifier.Verify(m); err != nil {
				t.Fatalf("event on %s: %v (headers %v)", m.Subject, err, m.Header)
			}
			e, err := events.DecodeBindingsChanged(m.Subject, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			services[e.Service] = true
		case <-deadline:
			t.Fatalf("signed events of %d services within 20s, want 3 or more: %v", len(services), services)
		}
	}
}

package resolverd

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// When a server removes an instance (its session invalidated) while its
// owner sees nothing wrong, the resolver names it on the service's
// instances subject, so that the owner reads its key at once; the owner
// then registers it again, which a second event does not follow.
func TestInstancesGoneAnnounced(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	gone := make(chan events.InstancesGone, 10)
	sub, err := f.nc.Subscribe(events.InstancesSubject("default", "api"), func(m *nats.Msg) {
		if e, err := events.DecodeInstancesGone(m.Subject, m.Data); err == nil {
			gone <- e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	f.startLoop(t, "gone", nil)
	f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })

	// An hour between hold checks: only the event brings it back soon.
	owner, err := f.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "api", Node: "api-1", Address: "127.0.0.1", Port: testcluster.TCPBackend(t)}, registry.WithHoldCheck(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Close(ctx) })
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := owner.WaitRegistered(wctx); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(t, "app-www", 5*time.Second, func(b *binding.Binding) bool { return b.Vars["API_URL"].Resolved })

	sessions, _, err := f.consul.Client.Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if s.Name == "patchbay instance "+owner.ID() {
			if _, err := f.consul.Client.Session().Destroy(s.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case e := <-gone:
		if e.Service != "api" || !slices.Equal(e.Instances, []string{owner.ID()}) {
			t.Fatalf("instances event %+v, want api and [%s]", e, owner.ID())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no instances event within 5s of the session's end")
	}
	// The listener hosting api would pass the event on; here the test does.
	owner.Recheck()
	f.waitEvent(t, "app-www", 5*time.Second, func(b *binding.Binding) bool { return b.Vars["API_URL"].Resolved })
}

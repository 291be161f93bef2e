package listener_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// A server ends the session of a node's instance (its node looked failed
// for a moment) while the node's agent and the owner see nothing wrong.
// The owner reads its key only every hold check (an hour here); the
// resolver's instances event makes the listener's owner read it at once,
// and the instance is back within seconds.
func TestInstanceGoneComesBack(t *testing.T) {
	c := newCluster(t)
	c.publish("id: api\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}")
	c.publish("id: web\nrequires: {API_URL: {key: API_URL}}")
	bound := make(chan bool, 100)
	sub, err := c.nc.Subscribe(events.BindingsSubject("default", "web"), func(m *nats.Msg) {
		e, err := events.DecodeBindingsChanged(m.Subject, m.Data)
		if err != nil || len(e.Binding) == 0 {
			return
		}
		if b, err := binding.DecodeBinding("event", e.Binding); err == nil {
			bound <- b.Vars["API_URL"].Resolved
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	c.startResolver()
	c.nodeOwner = []registry.OwnerOption{registry.WithHoldCheck(time.Hour)}
	c.startListener("api-1", "", "  - service: api\n    port: 9100\n")
	waitBound := func(want bool, what string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case got := <-bound:
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not within 15s", what)
			}
		}
	}
	// Bound by the resolver first: an instance that leaves before any
	// pass saw it changed nothing anyone sees, and is announced by no one.
	waitBound(true, "web bound to the listener's api instance")

	const key = "patchbay/registry/instances/default/api/api@api-1:9100"
	pair, _, err := c.consul.Client.KV().Get(key, nil)
	if err != nil || pair == nil || pair.Session == "" {
		t.Fatalf("instance key %s: %+v, %v", key, pair, err)
	}
	ended := pair.Session
	if _, err := c.consul.Client.Session().Destroy(ended, nil); err != nil {
		t.Fatal(err)
	}
	took := testcluster.Eventually(t, 5*time.Second, "the instance is back under a new session", func() bool {
		pair, _, err := c.consul.Client.KV().Get(key, nil)
		return err == nil && pair != nil && pair.Session != "" && pair.Session != ended
	})
	t.Logf("instance back %s after its session ended", took.Round(time.Millisecond))
}

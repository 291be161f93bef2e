package listener_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolverd"
)

const truthWeb = `id: web
requires: {DB_PASSWORD: "{DB_PASSWORD}"}
templates:
  env: {contents: "DB_PASSWORD={{ binding \"DB_PASSWORD\" }}\n", destination: /etc/web/env}`

// truthQueue runs soon after a trigger, so that anti-entropy's interval is
// what the tests measure.
const truthQueue = "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}"

// rewritten is web's binding as Consul holds it now, with another revision
// and password: what a forger publishes, or what a restore writes.
func rewritten(t *testing.T, c *cluster, rev uint64, password string) (*registry.StoredBinding, []byte) {
	t.Helper()
	sb, err := c.reg.Binding(t.Context(), "default", "web", "")
	if err != nil || sb == nil {
		t.Fatalf("web's binding: %v, %v", sb, err)
	}
	var b binding.Binding
	if err := json.Unmarshal(sb.Value, &b); err != nil {
		t.Fatal(err)
	}
	v := b.Vars["DB_PASSWORD"]
	v.Value = password
	b.Vars["DB_PASSWORD"], b.Revision = v, rev
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return sb, data
}

// announce publishes a bindings event for web on NATS, as anyone who can
// publish there may.
func announce(t *testing.T, c *cluster, rev, index uint64, binding []byte) {
	t.Helper()
	e := events.BindingsChanged{Federation: "default", Service: "web", Revision: rev, ModifyIndex: index, Binding: binding}
	if err := c.nc.Publish(events.BindingsSubject("default", "web"), e.Encode()); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// lastRevision is the revision of web's binding the node's last run used.
func lastRevision(n *node) uint64 {
	if r := n.last.Load(); r != nil && len(r.Services) == 1 {
		return r.Services[0].Revision
	}
	return 0
}

// A forged event (a future revision, Consul's own modify index, another
// password) may reach the file, but the next anti-entropy read puts
// Consul's binding back, and a later genuine change reaches the file.
// Before, the listener kept the forged revision over Consul's: the file
// held FORGED until a restart and every genuine event was ignored as older.
func TestForgedEventDoesNotPinTheHost(t *testing.T) {
	c := newCluster(t)
	c.publish(truthWeb)
	c.provSetDatastore(t, "DB_PASSWORD", "pw-1")
	c.startResolver()
	reads := &countingReads{Registry: c.reg}
	c.antiEntropy, c.nodeReg = "1s", reads
	n := c.startListener("web-1", truthQueue, "  - service: web\n")
	holds := func(s string) func() bool {
		return func() bool { return n.file("/etc/web/env") == s && idle(n) }
	}
	testcluster.Eventually(t, 30*time.Second, "web-1 renders Consul's password", holds("DB_PASSWORD=pw-1\n"))

	sb, forged := rewritten(t, c, 1000, "FORGED")
	consulRev := lastRevision(n)
	runs := n.runs.Load() // idle: only the forged event wakes a run
	announce(t, c, 1000, sb.ModifyIndex, forged)
	sent := time.Now()
	testcluster.Eventually(t, 10*time.Second, "the forged event's run", func() bool { return n.runs.Load() > runs })
	testcluster.Eventually(t, 10*time.Second, "anti-entropy puts Consul's password back", holds("DB_PASSWORD=pw-1\n"))
	t.Logf("Consul's password back %v after the forged event (anti_entropy 1s)", time.Since(sent).Round(10*time.Millisecond))
	if got := lastRevision(n); got != consulRev {
		t.Errorf("the last run applied revision %d, want Consul's %d", got, consulRev)
	}

	c.provSetDatastore(t, "DB_PASSWORD", "rotated")
	testcluster.Eventually(t, 15*time.Second, "the rotated password reaches the file", holds("DB_PASSWORD=rotated\n"))
	if got := lastRevision(n); got != consulRev+1 {
		t.Errorf("the last run applied revision %d, want Consul's %d", got, consulRev+1)
	}
	// What a genuine event brought is what Consul holds, content and all:
	// anti-entropy confirms it and wakes no run.
	runs, read := n.runs.Load(), reads.n.Load()
	testcluster.Eventually(t, 10*time.Second, "two more anti-entropy reads done", func() bool { return reads.n.Load() >= read+3 && idle(n) })
	if got := n.runs.Load() - runs; got != 0 {
		t.Errorf("%d runs after a genuine event while nothing changed, want 0", got)
	}
}

// countingReads counts the node's reads of Consul.
type countingReads struct {
	listener.Registry
	n atomic.Int64
}

func (r *countingReads) ReadNode(ctx context.Context, fed string, services []string, region string) ([]registry.HostedService, error) {
	r.n.Add(1)
	return r.Registry.ReadNode(ctx, fed, services, region)
}

// A binding Consul holds at a lower revision than the host (a snapshot
// restore, a binding rewritten while the resolver is down) is followed at
// the next anti-entropy read, and the events after it are applied. Before,
// the host kept the higher revision it held until a restart.
func TestConsulRevisionGoingBackIsFollowed(t *testing.T) {
	c := newCluster(t)
	c.publish(truthWeb)
	c.provSetDatastore(t, "DB_PASSWORD", "pw-1")
	ctx, stopResolver := context.WithCancel(context.Background())
	resolverDone := make(chan struct{})
	loop := resolverd.NewLoop(c.reg, c.nc, resolverd.WithDebounce(500*time.Millisecond, 5*time.Second), resolverd.WithLogger(testLogger(t, "resolver")))
	go func() { defer close(resolverDone); _ = loop.Run(ctx) }()
	t.Cleanup(func() { stopResolver(); <-resolverDone })
	c.antiEntropy = "1s"
	n := c.startListener("web-1", truthQueue, "  - service: web\n")
	holds := func(s string) func() bool {
		return func() bool { return n.file("/etc/web/env") == s && idle(n) }
	}
	testcluster.Eventually(t, 30*time.Second, "web-1 renders the first password", holds("DB_PASSWORD=pw-1\n"))
	c.provSetDatastore(t, "DB_PASSWORD", "pw-2")
	testcluster.Eventually(t, 30*time.Second, "web-1 renders the second password, by its event", holds("DB_PASSWORD=pw-2\n"))
	held := lastRevision(n)
	stopResolver() // the binding is rewritten while the resolver is down
	<-resolverDone

	sb, restored := rewritten(t, c, held-1, "pw-restored")
	index := write(t, c, sb.ModifyIndex, restored)
	written := time.Now()
	testcluster.Eventually(t, 10*time.Second, "web-1 follows Consul's lower revision", holds("DB_PASSWORD=pw-restored\n"))
	t.Logf("Consul's lower revision followed %v after the write (anti_entropy 1s)", time.Since(written).Round(10*time.Millisecond))
	if got := lastRevision(n); got != held-1 {
		t.Errorf("the last run applied revision %d, want Consul's %d", got, held-1)
	}

	// The next revision after the restored one, announced as the resolver
	// would, is applied: the host no longer holds revision `held`.
	_, next := rewritten(t, c, held, "pw-after")
	announce(t, c, held, write(t, c, index, next), next)
	testcluster.Eventually(t, 10*time.Second, "web-1 applies the next revision's event", holds("DB_PASSWORD=pw-after\n"))
}

// write stores web's binding over the one at index and returns its new
// modify index.
func write(t *testing.T, c *cluster, index uint64, value []byte) uint64 {
	t.Helper()
	got, err := c.reg.WriteBindings(t.Context(), []registry.BindingWrite{{StoredBinding: registry.StoredBinding{Federation: "default", Service: "web", Value: value, ModifyIndex: index}}})
	if err != nil || len(got) != 1 {
		t.Fatalf("writing web's binding: %v, %v", got, err)
	}
	return got[0]
}

package resolverd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// loopFixture is a real Consul and NATS with the examples published.
type loopFixture struct {
	nats   *testcluster.NATS
	consul *testcluster.Consul
	reg    *registry.Client
	nc     *nats.Conn
	events chan events.BindingsChanged
}

func newLoopFixture(t *testing.T) *loopFixture {
	t.Helper()
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifest.Load("../examples/services")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range set.Services {
		if _, err := reg.Publish(ctx, &s.Manifest); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.PublishDatastores(ctx, &set.Datastores[0].Datastores); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsSrv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := &loopFixture{nats: natsSrv, consul: consul, reg: reg, nc: nc, events: make(chan events.BindingsChanged, 1000)}
	sub, err := nc.Subscribe(events.BindingsSubject("default", "*"), func(m *nats.Msg) {
		if e, err := events.DecodeBindingsChanged(m.Subject, m.Data); err == nil {
			f.events <- e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// startLoop runs a loop until the test ends (or stop is called).
func (f *loopFixture) startLoop(t *testing.T, holder string, passes chan<- Pass) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	loop := NewLoop(f.reg, f.nc, WithHolder(holder), WithDebounce(0, 0),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithPassHook(func(p Pass) {
			if passes != nil {
				passes <- p
			}
		}))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = loop.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// waitEvent waits for an event of service whose binding satisfies ok.
func (f *loopFixture) waitEvent(t *testing.T, service string, deadline time.Duration, ok func(*binding.Binding) bool) (*binding.Binding, time.Duration) {
	t.Helper()
	start := time.Now()
	timeout := time.After(deadline)
	for {
		select {
		case e := <-f.events:
			if e.Service != service || e.Region != "" {
				continue
			}
			b := f.stored(t, service)
			if b != nil && b.Revision == e.Revision && ok(b) {
				return b, time.Since(start)
			}
		case <-timeout:
			t.Fatalf("no event for %s with the expected binding within %s (stored: %+v)", service, deadline, f.stored(t, service))
		}
	}
}

func (f *loopFixture) stored(t *testing.T, service string) *binding.Binding {
	t.Helper()
	sb, err := f.reg.Binding(context.Background(), "default", service, "")
	if err != nil {
		t.Fatal(err)
	}
	if sb == nil {
		return nil
	}
	var b binding.Binding
	if err := json.Unmarshal(sb.Value, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestLoopEndToEnd(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	f.startLoop(t, "r1", nil)

	// First pass: app-www binds DATABASE_URL to the datastore; no api yet.
	b, _ := f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })
	if v := b.Vars["DATABASE_URL"]; !v.Resolved || v.Value != "postgres://db.internal:5432/app" {
		t.Fatalf("DATABASE_URL = %+v", v)
	}
	if v := b.Vars["API_URL"]; v.Resolved {
		t.Fatalf("API_URL resolved with no api instance: %+v", v)
	}
	firstRevision := b.Revision

	// An api instance appears: app-www's API_URL binds to it.
	port := testcluster.TCPBackend(t) // api has a TCP health check
	owner, err := f.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "api", Node: "api-1", Address: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := owner.WaitRegistered(wctx); err != nil {
		t.Fatal(err)
	}
	b, took := f.waitEvent(t, "app-www", 5*time.Second, func(b *binding.Binding) bool { return b.Vars["API_URL"].Resolved })
	t.Logf("api instance registered → app-www binding in Consul and event on NATS: %s", took.Round(time.Millisecond))
	if b.Revision != firstRevision+1 || !strings.HasSuffix(b.Vars["API_URL"].Value, "/api/readonly") || len(b.Unresolved) != 0 {
		t.Fatalf("binding after api registered = %+v", b)
	}

	// The owner goes: DATABASE_URL stays on the datastore, API_URL is
	// unresolved with its reason.
	if err := owner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ = f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return !b.Vars["API_URL"].Resolved })
	if v := b.Vars["DATABASE_URL"]; !v.Resolved || !v.Providers[0].Datastore {
		t.Fatalf("DATABASE_URL after the api went = %+v", v)
	}
	if len(b.Unresolved) != 1 || b.Unresolved[0].Var != "API_URL" || !strings.Contains(b.Unresolved[0].Reason, "READONLY_API_URL") {
		t.Fatalf("unresolved = %+v", b.Unresolved)
	}
	t.Logf("API_URL unresolved: %s", b.Unresolved[0].Reason)
}

func TestLoopStandbyTakesOver(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	passesA, passesB := make(chan Pass, 100), make(chan Pass, 100)
	stopA := f.startLoop(t, "a", passesA)
	select {
	case <-passesA:
	case <-time.After(10 * time.Second):
		t.Fatal("first resolver never led")
	}
	f.startLoop(t, "b", passesB)
	// b stands by: a datastore change is resolved by a alone.
	if _, err := f.reg.SetDatastore(ctx, "default", "PRIMARY_DATABASE_URL", "postgres://db-2/app"); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Vars["DATABASE_URL"].Value == "postgres://db-2/app" })
	if len(passesB) != 0 {
		t.Fatal("standby resolved while the leader was alive")
	}
	stopA()
	select {
	case p := <-passesB:
		if p.Written != 0 {
			t.Fatalf("new leader rewrote %d unchanged bindings", p.Written)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("standby never took over")
	}
	if _, err := f.reg.SetDatastore(ctx, "default", "PRIMARY_DATABASE_URL", "postgres://db-3/app"); err != nil {
		t.Fatal(err)
	}
	b, _ := f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Vars["DATABASE_URL"].Value == "postgres://db-3/app" })
	if b.Revision < 3 {
		t.Fatalf("revision %d: the new leader did not continue the old one's revisions", b.Revision)
	}
}

// A NATS restart loses the events sent while it is down (NATS is at most
// once; listeners' anti-entropy covers that), and events flow again after.
func TestLoopSurvivesNATSRestart(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	f.startLoop(t, "r1", nil)
	f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })

	f.nats.Restart(t)
	testcluster.Eventually(t, 10*time.Second, "client reconnected to the restarted NATS", f.nc.IsConnected)
	if _, err := f.reg.SetDatastore(ctx, "default", "PRIMARY_DATABASE_URL", "postgres://after-restart/app"); err != nil {
		t.Fatal(err)
	}
	f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool {
		return b.Vars["DATABASE_URL"].Value == "postgres://after-restart/app"
	})
}

// Events carry the stored binding, so a listener needs no Consul read, and
// every binding that changes in one pass is written in one transaction.
func TestLoopEventsCarryBindingsWrittenInOneTransaction(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	passes := make(chan Pass, 100)
	f.startLoop(t, "r1", passes)
	var first Pass
	select {
	case first = <-passes:
	case <-time.After(10 * time.Second):
		t.Fatal("the resolver never led")
	}
	if first.Written < 2 {
		t.Fatalf("first pass wrote %d bindings; the examples need several", first.Written)
	}
	list, _, _, err := f.reg.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	indexes := map[uint64]bool{}
	for _, sb := range list {
		indexes[sb.ModifyIndex] = true
	}
	if len(indexes) != 1 {
		t.Fatalf("%d bindings written at %d Consul indexes; one transaction writes them at one", len(list), len(indexes))
	}
	e := f.nextEvent(t, "app-www")
	sb, err := f.reg.Binding(ctx, "default", "app-www", "")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Binding) != string(sb.Value) || e.ModifyIndex != sb.ModifyIndex {
		t.Fatalf("event carries %s at index %d; Consul holds %s at %d", e.Binding, e.ModifyIndex, sb.Value, sb.ModifyIndex)
	}
}

// A binding overwritten by hand is rewritten at once, and its revision
// continues above the one it replaced.
func TestLoopRewritesABindingWrittenByHand(t *testing.T) {
	f := newLoopFixture(t)
	f.startLoop(t, "r1", nil)
	b, _ := f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })
	for _, tc := range []struct{ name, value string }{
		{"garbage", "not json {"},
		{"an older copy", `{"federation":"default","service":"app-www","region":"","revision":1,"vars":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.stored(t, "app-www").Revision
			if _, err := f.consulKV().Put(&api.KVPair{Key: "patchbay/bindings/default/app-www/_", Value: []byte(tc.value)}, nil); err != nil {
				t.Fatal(err)
			}
			got, took := f.waitEvent(t, "app-www", 5*time.Second, func(got *binding.Binding) bool { return got.Revision > before })
			if got.Vars["DATABASE_URL"].Value != b.Vars["DATABASE_URL"].Value {
				t.Fatalf("rewritten binding = %+v", got)
			}
			t.Logf("%s rewritten in %s, revision %d → %d", tc.name, took.Round(time.Millisecond), before, got.Revision)
		})
	}
}

// TestLoopNeverWrapsARevision: a binding written by hand at the top of
// uint64 used to be rewritten at revision 0, which events read as
// "deleted". Its revision is refused and the rewrite continues above the
// key's modify index, below MaxRevision.
func TestLoopNeverWrapsARevision(t *testing.T) {
	f := newLoopFixture(t)
	f.startLoop(t, "r1", nil)
	b, _ := f.waitEvent(t, "app-www", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })
	for _, rev := range []uint64{math.MaxUint64, binding.MaxRevision + 1, binding.MaxRevision} {
		t.Run(strconv.FormatUint(rev, 10), func(t *testing.T) {
			before := f.stored(t, "app-www").Revision
			value := fmt.Sprintf(`{"federation":"default","service":"app-www","region":"","revision":%d,"vars":{}}`, rev)
			_, meta, err := f.consulKV().Get("patchbay/bindings/default/app-www/_", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.consulKV().Put(&api.KVPair{Key: "patchbay/bindings/default/app-www/_", Value: []byte(value)}, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := f.waitEvent(t, "app-www", 5*time.Second, func(got *binding.Binding) bool { return got.Revision != rev })
			if got.Revision <= before || got.Revision <= meta.LastIndex || got.Revision >= binding.MaxRevision {
				t.Errorf("rewritten at revision %d; want above %d (the last) and %d (Consul's index before the write), below %d", got.Revision, before, meta.LastIndex, uint64(binding.MaxRevision))
			}
			if got.Vars["DATABASE_URL"].Value != b.Vars["DATABASE_URL"].Value {
				t.Errorf("rewritten binding = %+v", got)
			}
			if stored := f.stored(t, "app-www"); stored.Revision != got.Revision {
				t.Errorf("Consul holds revision %d, the event said %d", stored.Revision, got.Revision)
			}
		})
	}
}

func (f *loopFixture) consulKV() *api.KV { return f.consul.Client.KV() }

// nextEvent returns the next event of service for region "".
func (f *loopFixture) nextEvent(t *testing.T, service string) events.BindingsChanged {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-f.events:
			if e.Service == service && e.Region == "" {
				return e
			}
		case <-timeout:
			t.Fatalf("no event for %s", service)
		}
	}
}

// TestLoopPublishesAWithheldChange: lb-public has no public provider, so a
// listener keeps its last good file; a private api instance then changes
// only what its binding lists as withheld by policy. That alone is a new
// revision with an event, since a file routing to it must be rendered.
func TestLoopPublishesAWithheldChange(t *testing.T) {
	f := newLoopFixture(t)
	ctx := context.Background()
	f.startLoop(t, "r1", nil)
	b, _ := f.waitEvent(t, "lb-public", 10*time.Second, func(b *binding.Binding) bool { return b.Revision >= 1 })
	if v := b.Vars["ROUTES"]; !v.Resolved || len(v.Providers) != 0 || v.Withheld != nil {
		t.Fatalf("ROUTES with no instance = %+v", v)
	}
	first := b.Revision

	port := testcluster.TCPBackend(t)
	owner, err := f.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "api", Node: "api-1", Address: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	b, _ = f.waitEvent(t, "lb-public", 15*time.Second, func(b *binding.Binding) bool { return b.Vars["ROUTES"].Withheld != nil })
	v := b.Vars["ROUTES"]
	if b.Revision != first+1 || len(v.Providers) != 0 || len(v.Withheld.List()) != 2 {
		t.Fatalf("binding after a private api registered = revision %d (want %d), ROUTES %+v", b.Revision, first+1, v)
	}
	for _, w := range v.Withheld.List() {
		if w.Service != "api" || w.Reason != binding.WithheldNotPublic || w.Port != port {
			t.Fatalf("withheld %+v, want the api instance, not public", w)
		}
	}

	if err := owner.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ = f.waitEvent(t, "lb-public", 10*time.Second, func(b *binding.Binding) bool { return b.Vars["ROUTES"].Withheld == nil })
	if b.Revision != first+2 {
		t.Fatalf("revision %d after the api went, want %d", b.Revision, first+2)
	}
}

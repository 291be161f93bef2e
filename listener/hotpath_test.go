package listener_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/bench"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// A change reaches a listener's files through the event alone: the run it
// triggers reads nothing from Consul and, its outcome unchanged, writes no
// status. A manifest change, which the event only names by digest, is read
// from Consul once; an outcome that changes is recorded once.
func TestEventRunsAreConsulFree(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	proxy, err := bench.StartProxy("listener", c.consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	c.nodeReg, err = registry.New(registry.WithAddress(proxy.Addr), registry.WithLogger(testLogger(t, "node-registry")))
	if err != nil {
		t.Fatal(err)
	}
	c.antiEntropy = "10m" // no periodic read during the test
	const web = `id: web
requires: {DB: "{DB_URL}"}
templates:
  env:
    contents: "DB={{ binding \"DB\" }}%s\n"
    destination: /etc/web/env`
	c.publish(strings.Replace(web, "%s", "", 1))
	setDB := func(v string) { c.provSetDatastore(t, "DB_URL", v) }
	setDB("postgres://one")
	c.startResolver()
	n := c.startListener("web-1", "{}", "  - service: web\n")
	holds := func(s string) func() bool {
		return func() bool { return n.file("/etc/web/env") == s && idle(n) }
	}
	testcluster.Eventually(t, 30*time.Second, "web-1 renders the first value", holds("DB=postgres://one\n"))

	cases := []struct {
		name   string
		change func()
		want   string
		// requests the listener may make for the change
		allowed bench.Counts
	}{
		{"a binding change", func() { setDB("postgres://two") }, "DB=postgres://two\n", bench.Counts{}},
		{"another binding change", func() { setDB("postgres://three") }, "DB=postgres://three\n", bench.Counts{}},
		{"a manifest change", func() { c.publish(strings.Replace(web, "%s", " # v2", 1)) }, "DB=postgres://three # v2\n", bench.Counts{bench.Read: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runs, before := n.runs.Load(), proxy.Counts()
			tc.change()
			testcluster.Eventually(t, 30*time.Second, "web-1 renders the change", holds(tc.want))
			made := proxy.Counts().Sub(before)
			for class, count := range made {
				if count > tc.allowed[class] {
					t.Errorf("%d %s requests for the change (%d runs); want at most %d (by path: %v)", count, bench.Class(class), n.runs.Load()-runs, tc.allowed[class], proxy.ByPath())
				}
			}
		})
	}

	// An outcome that changes (an unresolved requirement) is recorded once.
	puts := func() int { return proxy.ByPath()["PUT /v1/kv/patchbay/status"] }
	before := puts()
	if err := c.reg.DeleteDatastore(ctx, "default", "DB_URL"); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 30*time.Second, "web-1 records the skipped run", func() bool {
		s, _, err := c.reg.Statuses(ctx)
		return err == nil && len(s) == 1 && s[0].Result == "skipped"
	})
	if got := puts() - before; got != 1 {
		t.Errorf("%d status writes for one change of outcome, want 1", got)
	}
}

// countingHandler counts the log records that contain a message part.
type countingHandler struct {
	slog.Handler
	part  string
	count *atomic.Int64
}

func (countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.part) {
		h.count.Add(1)
	}
	return nil
}

// A flood of malformed messages on a listener's subject is counted in a
// metric and logged a bounded number of times, not once per message.
func TestMalformedEventsAreBounded(t *testing.T) {
	c := newCluster(t)
	var logged atomic.Int64
	c.nodeLog = slog.New(countingHandler{Handler: slog.DiscardHandler, part: "malformed", count: &logged})
	c.publish("id: web\n")
	n := c.startListener("web-1", "{}", "  - service: web\n")
	testcluster.Eventually(t, 30*time.Second, "the listener subscribes", func() bool { return n.l.ControlAddr() != "" && n.runs.Load() > 0 })
	const flood = 2000
	for range flood {
		if err := c.nc.Publish(events.BindingsSubject("default", "web"), []byte("\xff not json")); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	metric := func() string {
		resp, err := http.Get("http://" + n.l.ControlAddr() + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "patchbay_listener_events_malformed_total ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "patchbay_listener_events_malformed_total "))
			}
		}
		return ""
	}
	testcluster.Eventually(t, 10*time.Second, "the metric counts every malformed message", func() bool { return metric() == strconv.Itoa(flood) })
	if got := logged.Load(); got < 1 || got > 2 {
		t.Errorf("%d log lines for %d malformed messages in under 10 s, want 1 (or 2 across a 10 s boundary)", got, flood)
	}
}

// heldBus delivers events as they come, except between hold and release,
// when it keeps them: the event of a change that anti-entropy finds first.
type heldBus struct {
	nc *nats.Conn

	mu      sync.Mutex
	holding bool
	held    []func()
}

func (b *heldBus) Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	return b.nc.Subscribe(subject, func(m *nats.Msg) {
		b.mu.Lock()
		if b.holding {
			b.held = append(b.held, func() { cb(m) })
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		cb(m)
	})
}

func (b *heldBus) hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = true
}

// release delivers the kept events, on the caller's goroutine, and stops
// keeping them; it reports how many there were.
func (b *heldBus) release() int {
	b.mu.Lock()
	held := b.held
	b.held, b.holding = nil, false
	b.mu.Unlock()
	for _, deliver := range held {
		deliver()
	}
	return len(held)
}

func (b *heldBus) keeps() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

// releaseOnNextRead releases the bus's events just before the read that
// follows one showing service's binding past since: that is the read of
// the run anti-entropy triggered, if the run reads Consul again.
type releaseOnNextRead struct {
	listener.Registry
	bus     *heldBus
	service string
	since   atomic.Uint64
	sawNew  atomic.Bool
}

func (r *releaseOnNextRead) ReadNode(ctx context.Context, fed string, services []string, region string) ([]registry.HostedService, error) {
	if r.sawNew.Load() {
		r.bus.release()
	}
	hosted, err := r.Registry.ReadNode(ctx, fed, services, region)
	for _, h := range hosted {
		if h.Service == r.service && h.Binding != nil && r.since.Load() != 0 && h.Binding.ModifyIndex > r.since.Load() {
			r.sawNew.Store(true)
		}
	}
	return hosted, err
}

// A change that anti-entropy finds before its event arrives gives one run,
// and the late event is recognised as held. Before, anti-entropy marked the
// inputs stale; an event landing between that and the run's read of Consul
// looked new and queued a second run (a CI failure of the burst test).
func TestLateEventAfterAntiEntropy(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.publish(`id: web
requires: {DB: "{DB_URL}"}
templates:
  env: {contents: "DB={{ binding \"DB\" }}\n", destination: /etc/web/env}`)
	setDB := func(v string) { c.provSetDatastore(t, "DB_URL", v) }
	setDB("postgres://one")
	c.startResolver()
	bus := &heldBus{nc: c.nc}
	reads := &releaseOnNextRead{Registry: c.reg, bus: bus, service: "web"}
	c.antiEntropy, c.nodeBus, c.nodeReg = "1s", bus, reads
	n := c.startListener("web-1", "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}", "  - service: web\n")
	holds := func(s string) bool { return n.file("/etc/web/env") == s && idle(n) }
	testcluster.Eventually(t, 30*time.Second, "web-1 renders the first value", func() bool { return holds("DB=postgres://one\n") })

	first, err := c.reg.Binding(ctx, "default", "web", "")
	if err != nil || first == nil {
		t.Fatalf("web's binding: %v, %v", first, err)
	}
	runs := n.runs.Load()
	ignored := metric(scrape(t, n), `patchbay_listener_events_ignored_total{reason="held"}`)
	bus.hold()
	reads.since.Store(first.ModifyIndex)
	setDB("postgres://two")
	testcluster.Eventually(t, 30*time.Second, "anti-entropy brings the change while its event is kept", func() bool {
		return holds("DB=postgres://two\n") && (bus.keeps() > 0 || reads.sawNew.Load())
	})
	bus.release() // if the run did not read Consul again, the event comes now
	testcluster.Eventually(t, 10*time.Second, "the late event is handled", func() bool {
		return metric(scrape(t, n), `patchbay_listener_events_ignored_total{reason="held"}`) > ignored || !idle(n) || n.runs.Load() > runs+1
	})
	testcluster.Eventually(t, 10*time.Second, "web-1 is idle", func() bool { return idle(n) })
	if got := n.runs.Load() - runs; got != 1 {
		t.Errorf("%d runs for one change found by anti-entropy before its event; want 1", got)
	}
	if got := metric(scrape(t, n), `patchbay_listener_events_ignored_total{reason="held"}`); got <= ignored {
		t.Errorf("the late event was not ignored as held (ignored %v, was %v)", got, ignored)
	}
}

// An event landing while the node's first read of Consul is under way is
// newer than that read: the next run reads again and renders the change.
// Before, the run trusted the first read and the change waited for
// anti-entropy (2 minutes by default).
func TestEventDuringFirstRead(t *testing.T) {
	c := newCluster(t)
	c.provSetDatastore(t, "DB_URL", "postgres://one")
	m, err := manifest.Parse("web.yaml", []byte(`id: web
requires: {DB: "{DB_URL}"}
templates:
  env: {contents: "DB={{ binding \"DB\" }}\n", destination: /etc/web/env}`))
	if err != nil {
		t.Fatal(err)
	}
	c.startResolver()
	bus := &heldBus{nc: c.nc}
	bus.hold()
	var published atomic.Int64 // events delivered inside the first read; -1: publishing failed
	reads := &duringFirstRead{Registry: c.reg, hook: func() {
		// The read is done: web is not published in what it saw. Now it
		// is, and its binding's event arrives before the read returns.
		if _, err := c.reg.Publish(context.Background(), m); err != nil {
			published.Store(-1)
			return
		}
		for deadline := time.Now().Add(20 * time.Second); bus.keeps() == 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		published.Store(int64(bus.release()))
	}}
	c.antiEntropy, c.nodeBus, c.nodeReg = "1m", bus, reads
	n := c.startListener("web-1", "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}", "  - service: web\n")
	testcluster.Eventually(t, 30*time.Second, "web's event delivered inside the first read", func() bool { return published.Load() != 0 })
	if published.Load() < 0 {
		t.Fatal("publishing web inside the first read failed")
	}
	testcluster.Eventually(t, 15*time.Second, "web-1 renders the binding without waiting for anti-entropy", func() bool {
		return n.file("/etc/web/env") == "DB=postgres://one\n" && idle(n)
	})
}

// duringFirstRead calls hook once, after the first ReadNode read Consul
// and before it returns.
type duringFirstRead struct {
	listener.Registry
	once sync.Once
	hook func()
}

func (r *duringFirstRead) ReadNode(ctx context.Context, fed string, services []string, region string) ([]registry.HostedService, error) {
	hosted, err := r.Registry.ReadNode(ctx, fed, services, region)
	r.once.Do(r.hook)
	return hosted, err
}

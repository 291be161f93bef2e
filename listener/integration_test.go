package listener_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolverd"
)

// cluster is a real Consul and NATS, a resolver, and the listeners of a
// test, each node with its own root directory.
type cluster struct {
	t      *testing.T
	consul *testcluster.Consul
	nats   *testcluster.NATS
	reg    *registry.Client
	nc     *nats.Conn
	// nodeReg, when set, is the registry of the listeners (a client
	// through a counting proxy); else they use reg.
	nodeReg     listener.Registry
	antiEntropy string                 // of the listeners; default 2s
	nodeLog     *slog.Logger           // of the listeners; default testLogger
	nodeExtra   string                 // more listener.yaml lines of the next listeners (region: eu)
	nodeBus     listener.Bus           // of the next listeners; default nc
	nodeOwner   []registry.OwnerOption // more options of the next listeners' instance owners
}

func cmpOrLogger(a, b *slog.Logger) *slog.Logger {
	if a != nil {
		return a
	}
	return b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, consul: testcluster.StartConsul(t), nats: testcluster.StartNATS(t)}
	var err error
	c.reg, err = registry.New(registry.WithAddress(c.consul.Addr), registry.WithLogger(testLogger(t, "registry")))
	if err != nil {
		t.Fatal(err)
	}
	c.nc, err = nats.Connect(c.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	return c
}

func testLogger(t *testing.T, who string) *slog.Logger { return testcluster.Logger(t, who) }

func (c *cluster) publish(doc string) {
	c.t.Helper()
	m, err := manifest.Parse("test.yaml", []byte(doc))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.reg.Publish(context.Background(), m); err != nil {
		c.t.Fatal(err)
	}
}

// startResolver runs the resolver loop until the test ends, with a short
// debounce unless opts say otherwise.
func (c *cluster) startResolver(opts ...resolverd.LoopOption) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts = append([]resolverd.LoopOption{resolverd.WithDebounce(500*time.Millisecond, 5*time.Second), resolverd.WithLogger(testLogger(c.t, "resolver"))}, opts...)
	loop := resolverd.NewLoop(c.reg, c.nc, opts...)
	done := make(chan struct{})
	go func() { defer close(done); _ = loop.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
}

// node is one running listener.
type node struct {
	name   string
	root   string
	cfg    *listener.Config // as loaded at start
	l      *listener.Listener
	runs   atomic.Int64
	last   atomic.Pointer[listener.RunReport]
	tested atomic.Pointer[listener.RunReport] // the last run that ran declared tests

	mu      sync.Mutex
	results []string // every run's result and message
}

func (n *node) ran(r listener.RunReport) {
	n.runs.Add(1)
	n.last.Store(&r)
	if slices.ContainsFunc(r.Services, func(s listener.ServiceRun) bool { return len(s.Tests) > 0 }) {
		n.tested.Store(&r)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.results = append(n.results, r.Result+": "+r.Message)
}

// hadRun reports whether some run's result and message contain s.
func (n *node) hadRun(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.results {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

func (n *node) file(path string) string {
	b, _ := os.ReadFile(filepath.Join(n.root, path))
	return string(b)
}

// startListener writes a listener.yaml for a node hosting services and
// runs its listener until the test ends.
func (c *cluster) startListener(name, queue, services string) *node {
	c.t.Helper()
	dir := c.t.TempDir()
	n := &node{name: name, root: filepath.Join(dir, "root")}
	cfgPath := filepath.Join(dir, "listener.yaml")
	doc := fmt.Sprintf(`node: %s
address: 127.0.0.1
root: %s
state_dir: %s
control: "127.0.0.1:0"
anti_entropy: %s
queue: %s
retry: {initial: 1s, max: 5s}
%s
%sservices:
%s`, name, n.root, filepath.Join(dir, "state"), cmpOr(c.antiEntropy, "2s"), queue, testAllowAll, c.nodeExtra, services)
	if err := os.WriteFile(cfgPath, []byte(doc), 0o644); err != nil {
		c.t.Fatal(err)
	}
	cfg, err := listener.LoadConfig(cfgPath)
	if err != nil {
		c.t.Fatal(err)
	}
	var reg listener.Registry = c.reg
	if c.nodeReg != nil {
		reg = c.nodeReg
	}
	var bus listener.Bus = c.nc
	if c.nodeBus != nil {
		bus = c.nodeBus
	}
	n.cfg = cfg
	n.l, err = listener.New(cfg, reg,
		listener.WithBus(bus), listener.WithLogger(cmpOrLogger(c.nodeLog, testLogger(c.t, name))),
		listener.WithOwnerOptions(append([]registry.OwnerOption{registry.WithOwnerTTL(2 * time.Second)}, c.nodeOwner...)...),
		listener.WithRunHook(n.ran))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.l.Run(ctx) }()
	c.t.Cleanup(func() { cancel(); <-done })
	c.t.Cleanup(func() { // runs first: a failure shows what each node did
		if c.t.Failed() {
			n.mu.Lock()
			defer n.mu.Unlock()
			c.t.Logf("%s: queue %+v, runs %q", name, n.l.Report().Queue, n.results)
		}
	})
	return n
}

// idle reports whether no run is running, queued or due for a retry.
func idle(n *node) bool {
	q := n.l.Report().Queue
	return !q.Pending && !q.Running && q.RetryAt.IsZero()
}

func lines(s string) int { return strings.Count(s, "\n") }

// TestBurstOfRegistrations is the first "done when": 100 instance
// registrations within about a second give each consuming listener at
// most 2 provision runs, and all three converge to identical files.
func TestBurstOfRegistrations(t *testing.T) {
	c := newCluster(t)
	c.publish(`id: api
provides: {API_URL: "http://{HOST}:{PORT}"}`)
	c.publish(`id: web
requires:
  API_URL: {key: API_URL, select: all}
templates:
  upstreams:
    contents: "{{ range upstreams \"API_URL\" }}{{ .HostPort }}\n{{ end }}"
    destination: /etc/web/upstreams`)
	// The target holds with the default debounce: a shorter one turns a
	// loaded machine's pauses between registrations into extra passes.
	// Every pass is logged, so a failure shows which change made a run.
	c.startResolver(resolverd.WithDebounce(resolverd.DefaultQuiet, resolverd.DefaultMaxWait), resolverd.WithPassHook(func(p resolverd.Pass) {
		t.Logf("resolver pass at index %d: %d written, %d deleted", p.Index, p.Written, p.Deleted)
	}))
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, c.startListener(fmt.Sprintf("web-%d", i+1), "{quiet: 1s, max_wait: 10s, min_interval: 30s, burst: 3}", fmt.Sprintf("  - service: web\n    port: %d\n", 9000+i)))
	}
	// The 101 owners are goroutines of this one process. On a loaded CI
	// machine their heartbeats can miss the default 3 s TTL; the lost and
	// re-registered provider is then a real change after the burst, and a
	// real extra run (seen in CI). The burst is what this test measures.
	register := func(i int) *registry.Owner {
		o, err := c.reg.Register(context.Background(), registry.InstanceSpec{
			Federation: "default", Service: "api", Node: fmt.Sprintf("api-%d", i), Address: "127.0.0.1", Port: 10000 + i,
		}, registry.WithOwnerTTL(time.Minute))
		if err != nil {
			t.Error(err)
			return nil
		}
		t.Cleanup(func() { _ = o.Close(context.Background()) })
		return o
	}
	if err := register(0).WaitRegistered(t.Context()); err != nil {
		t.Fatal(err)
	}
	converged := func(want int) func() bool {
		return func() bool {
			for _, n := range nodes {
				if lines(n.file("/etc/web/upstreams")) != want || !idle(n) {
					return false
				}
			}
			return true
		}
	}
	testcluster.Eventually(t, 60*time.Second, "three listeners render the first upstream", converged(1))
	before := make([]int64, len(nodes))
	for i, n := range nodes {
		before[i] = n.runs.Load()
	}

	start := time.Now()
	owners := make([]*registry.Owner, 100)
	var wg sync.WaitGroup
	for i := range owners {
		wg.Go(func() { owners[i] = register(i + 1) })
	}
	wg.Wait()
	for _, o := range owners {
		if o == nil {
			t.FailNow()
		}
		if err := o.WaitRegistered(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("100 instances registered in %s", time.Since(start).Round(time.Millisecond))
	testcluster.Eventually(t, 90*time.Second, "three listeners render 101 upstreams", converged(101))
	t.Logf("all three listeners rendered 101 upstreams %s after the burst began", time.Since(start).Round(time.Millisecond))

	want := nodes[0].file("/etc/web/upstreams")
	for i, n := range nodes {
		runs := n.runs.Load() - before[i]
		t.Logf("%s: %d provision runs for the burst", n.name, runs)
		if runs < 1 || runs > 2 {
			t.Errorf("%s ran %d provisions for 100 registrations, want 1 or 2", n.name, runs)
		}
		if got := n.file("/etc/web/upstreams"); got != want {
			t.Errorf("%s rendered a different file than %s:\n%s\nvs\n%s", n.name, nodes[0].name, got, want)
		}
		if r := n.last.Load(); r == nil || r.Result != listener.ResultOK {
			t.Errorf("%s: last run %+v, want ok", n.name, r)
		}
	}
}

// healthServer answers a node's health check: 500 while the node's
// rendered env file holds BROKEN. It records whether it ever saw it.
type healthServer struct {
	port      int
	sawBroken atomic.Bool
}

func startHealthServer(t *testing.T, n func() *node) *healthServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &healthServer{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if nd := n(); nd != nil && strings.Contains(nd.file("/etc/www/env"), "BROKEN") {
			h.sawBroken.Store(true)
			http.Error(w, "database unreachable", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }() // ends at Close
	t.Cleanup(func() { _ = srv.Close() })
	return h
}

// TestRolloutHalt is the second "done when": a change whose apply
// makes the health check fail is rolled back on the one node that took the
// rollout slot, halts the group, and the other nodes stage but do not
// apply it until patchbay rollout resume.
func TestRolloutHalt(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	c.publish(`id: www
requires: {DATABASE_URL: "{DATABASE_URL}"}
rollout: {group: www, concurrency: 1, health_timeout: 5s}
health: {http: "http://{HOST}:{PORT}/healthz", interval: 1s, timeout: 1s}
templates:
  env: {source: "builtin:env", destination: /etc/www/env}`)
	setDB := func(v string) {
		t.Helper()
		if _, err := c.reg.SetDatastore(ctx, "default", "DATABASE_URL", v); err != nil {
			t.Fatal(err)
		}
	}
	setDB("postgres://good")
	c.startResolver()
	nodes := make([]*node, 3)
	var mu sync.Mutex
	health := make([]*healthServer, 3)
	for i := range nodes {
		health[i] = startHealthServer(t, func() *node { mu.Lock(); defer mu.Unlock(); return nodes[i] })
	}
	for i := range nodes {
		n := c.startListener(fmt.Sprintf("www-%d", i+1), "{quiet: 200ms, max_wait: 2s, min_interval: 1s, burst: 3}", fmt.Sprintf("  - service: www\n    port: %d\n", health[i].port))
		mu.Lock()
		nodes[i] = n
		mu.Unlock()
	}
	all := func(cond func(*node) bool) func() bool {
		return func() bool {
			for _, n := range nodes {
				if !cond(n) {
					return false
				}
			}
			return true
		}
	}
	holds := func(s string) func(*node) bool {
		return func(n *node) bool { return strings.Contains(n.file("/etc/www/env"), s) && idle(n) }
	}
	testcluster.Eventually(t, 60*time.Second, "three nodes apply postgres://good", all(holds("postgres://good")))

	group, err := c.reg.Rollout("default", "www")
	if err != nil {
		t.Fatal(err)
	}
	setDB("postgres://BROKEN")
	var halt *registry.Halt
	testcluster.Eventually(t, 60*time.Second, "the group halts", func() bool {
		halt, _ = group.Halted(ctx)
		return halt != nil
	})
	t.Logf("halted by %s: %s", halt.Node, halt.Reason)
	if !strings.Contains(halt.Reason, "health check") {
		t.Errorf("halt reason %q does not name the health check", halt.Reason)
	}
	result := func(n *node) string {
		if r := n.last.Load(); r != nil && len(r.Services) == 1 {
			return r.Services[0].Result
		}
		return ""
	}
	// The node that failed rolls back and, retrying, finds the group
	// halted like the others.
	settled := func(n *node) bool {
		return result(n) == listener.ResultHalted && holds("postgres://good")(n)
	}
	testcluster.Eventually(t, 60*time.Second, "the failing node rolls back, the others stage only", all(settled))
	for _, n := range nodes {
		if rolledBack := n.hadRun("failed: www failed: rolled back"); rolledBack != (n.name == halt.Node) {
			t.Errorf("%s rolled back: %v, want only %s to", n.name, rolledBack, halt.Node)
		}
	}
	broken := 0
	for i, h := range health {
		if h.sawBroken.Load() {
			broken++
			if nodes[i].name != halt.Node {
				t.Errorf("%s applied the broken change, but %s halted the group", nodes[i].name, halt.Node)
			}
		}
	}
	if broken != 1 {
		t.Errorf("%d nodes applied the broken change, want exactly 1 (concurrency 1)", broken)
	}
	statuses, _, err := c.reg.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 3 {
		t.Errorf("%d statuses in Consul, want 3", len(statuses))
	}
	for _, s := range statuses {
		if s.Result != listener.ResultHalted || !strings.Contains(s.Message, "halted by "+halt.Node) {
			t.Errorf("status of %s: %s %q, want halted naming %s", s.Node, s.Result, s.Message, halt.Node)
		}
	}

	// A fixed value waits for the operator: the group is still halted.
	setDB("postgres://fixed")
	// The operator resumes once the fix is in the binding; resuming sooner
	// lets the next node apply the broken value and halt the group again.
	var fixed binding.Binding
	testcluster.Eventually(t, 30*time.Second, "the resolver binds the fix", func() bool {
		b, err := c.reg.Binding(ctx, "default", "www", "")
		return err == nil && b != nil && strings.Contains(string(b.Value), "postgres://fixed") && json.Unmarshal(b.Value, &fixed) == nil
	})
	// and once every node has heard it: Consul holding the fix does not
	// mean its event has reached a node, which would apply what it holds.
	testcluster.Eventually(t, 30*time.Second, "every node stages the fix", all(func(n *node) bool {
		r := n.last.Load()
		return r != nil && len(r.Services) == 1 && r.Services[0].Revision >= fixed.Revision && idle(n)
	}))
	resumed, err := group.Resume(ctx)
	if err != nil || !resumed {
		t.Fatalf("resume: %v, %v", resumed, err)
	}
	if err := c.nc.Publish(events.RolloutSubject("default", "www"), nil); err != nil {
		t.Fatal(err)
	}
	took := testcluster.Eventually(t, 60*time.Second, "after resume every node applies the fix", all(func(n *node) bool {
		return holds("postgres://fixed")(n) && result(n) == listener.ResultOK
	}))
	t.Logf("all three nodes applied the fix %s after resume", took.Round(time.Millisecond))
	if h, _ := group.Halted(ctx); h != nil {
		t.Errorf("group halted again: %+v", h)
	}
}

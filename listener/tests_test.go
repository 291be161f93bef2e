package listener_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// gateway is a real HTTP server standing for a node's API gateway: it
// answers 502 while the node's installed env file holds BROKEN.
type gateway struct {
	port int
	mu   sync.Mutex
	n    *node
}

func startGateway(t *testing.T, envFile string) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		n := g.n
		g.mu.Unlock()
		if n != nil && strings.Contains(n.file(envFile), "BROKEN") {
			http.Error(w, "upstream database unreachable", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "gateway ok")
	})}
	go func() { _ = srv.Serve(ln) }() // ends at Close
	t.Cleanup(func() { _ = srv.Close() })
	return g
}

func (g *gateway) serve(n *node) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n = n
}

// gatewayManifest declares two HTTP checks of the gateway, as an
// operations team's meta-configuration would.
func gatewayManifest(id, extra string) string {
	return fmt.Sprintf(`id: %s
environment: {HEALTH_PATH: /healthz}
requires: {GW_DB: "{GW_DB}"}
%s
tests:
  - {name: gateway-health, command: [curl, -fsS, --max-time, "2", "http://{HOST}:{PORT}{HEALTH_PATH}"], timeout: 5s}
  - {name: gateway-root, command: [curl, -fsS, "http://{HOST}:{PORT}/"]}
templates:
  env: {source: "builtin:env", destination: /etc/%s/env}`, id, extra, id)
}

func lastService(n *node) *listener.ServiceRun { return onlyService(n.last.Load()) }

// lastTested is the service of the last run that ran its tests: a run
// that changed nothing (an event that raced with the node's first read of
// Consul queues one) applies nothing and runs no test.
func lastTested(n *node) *listener.ServiceRun { return onlyService(n.tested.Load()) }

func onlyService(r *listener.RunReport) *listener.ServiceRun {
	if r == nil || len(r.Services) != 1 {
		return nil
	}
	return &r.Services[0]
}

// A failing declared test outside a rollout group: the run fails naming
// the test and its exit status (report, status in Consul, metrics; the
// output only in the report the control endpoint serves), the previous file is
// back, and the queue retries with backoff until a fix passes.
func TestDeclaredTestsOutsideRollout(t *testing.T) {
	testcluster.RequirePrograms(t, "curl") // the declared tests are real HTTP checks
	c := newCluster(t)
	ctx := t.Context()
	setDB := func(v string) {
		t.Helper()
		if _, err := c.reg.SetDatastore(ctx, "default", "GW_DB", v); err != nil {
			t.Fatal(err)
		}
	}
	setDB("postgres://good")
	c.publish(gatewayManifest("gw", ""))
	c.startResolver()
	g := startGateway(t, "/etc/gw/env")
	n := c.startListener("gw-1", "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}", fmt.Sprintf("  - service: gw\n    port: %d\n", g.port))
	g.serve(n)
	testcluster.Eventually(t, 30*time.Second, "gw applies and its tests pass", func() bool {
		s := lastTested(n)
		return s != nil && s.Result == listener.ResultOK && len(s.Tests) == 2 && idle(n)
	})
	s := lastTested(n)
	wantURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", g.port)
	if t0 := s.Tests[0]; !t0.Passed || t0.Name != "gateway-health" || !strings.Contains(t0.Command, wantURL) || !strings.Contains(t0.Output, "gateway ok") {
		t.Errorf("first test %+v, want gateway-health passed against %s", t0, wantURL)
	}

	setDB("postgres://BROKEN")
	var failedAt []time.Time // starts of failed runs, seen as they finish
	testcluster.Eventually(t, 30*time.Second, "a run fails on the test and is retried twice", func() bool {
		if r := n.last.Load(); r != nil && r.Result == listener.ResultFailed && !slices.Contains(failedAt, r.Started) {
			failedAt = append(failedAt, r.Started)
		}
		return len(failedAt) >= 3
	})
	if got := n.file("/etc/gw/env"); !strings.Contains(got, "postgres://good") {
		t.Errorf("env file after the failed test:\n%s\nwant the previous version restored", got)
	}
	s = lastService(n)
	if s == nil || s.Result != listener.ResultFailed || !strings.Contains(s.Reason, "rolled back: test gateway-health failed") || !strings.Contains(s.Reason, "exit status 22") || strings.Contains(s.Reason, "502") {
		t.Fatalf("service report %+v, want failed, rolled back, naming the test and curl's exit status but not its output", s)
	}
	if len(s.Tests) != 1 || s.Tests[0].Passed || !strings.Contains(s.Tests[0].Output, "502") {
		t.Errorf("tests %+v: want gateway-health failed with curl's output, gateway-root not run", s.Tests)
	}
	if q := n.l.Report().Queue; q.RetryAt.IsZero() && !q.Pending && !q.Running {
		t.Errorf("queue %+v: a failed test leaves no retry due", q)
	}
	testcluster.Eventually(t, 10*time.Second, "the status in Consul names the test and its exit status", func() bool {
		statuses, _, err := c.reg.Statuses(ctx)
		if err != nil || len(statuses) != 1 {
			return false
		}
		st := statuses[0]
		return st.Result == listener.ResultFailed && strings.Contains(st.Details["gw"], "test gateway-health failed") && strings.Contains(st.Details["gw"], "exit status 22")
	})
	if statuses, _, err := c.reg.Statuses(ctx); err != nil || strings.Contains(statuses[0].Details["gw"]+statuses[0].Message, "502") {
		t.Errorf("status in Consul %+v (%v): holds the test's output, which stays on the node", statuses, err)
	}
	metrics := scrape(t, n)
	for _, want := range []string{`patchbay_listener_tests_total{result="failed",service="gw"}`, `patchbay_listener_tests_total{result="passed",service="gw"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for i := 1; i < len(failedAt); i++ {
		// retry: {initial: 1s}, randomized by ±50%
		if gap := failedAt[i].Sub(failedAt[i-1]); gap < 450*time.Millisecond {
			t.Errorf("failed runs %s apart: the retry backoff does not apply", gap)
		}
	}

	setDB("postgres://fixed")
	testcluster.Eventually(t, 30*time.Second, "the fix applies and passes", func() bool {
		s := lastService(n)
		return s != nil && s.Result == listener.ResultOK && strings.Contains(n.file("/etc/gw/env"), "postgres://fixed") && idle(n)
	})
}

// A failing declared test inside a rollout group rolls back and halts the
// group, as a failing health wait does; the other node stages only.
func TestDeclaredTestsHaltRollout(t *testing.T) {
	testcluster.RequirePrograms(t, "curl") // the declared tests are real HTTP checks
	c := newCluster(t)
	ctx := t.Context()
	setDB := func(v string) {
		t.Helper()
		if _, err := c.reg.SetDatastore(ctx, "default", "GW_DB", v); err != nil {
			t.Fatal(err)
		}
	}
	setDB("postgres://good")
	c.publish(gatewayManifest("gwr", "rollout: {group: gwr, concurrency: 1, health_timeout: 5s}"))
	c.startResolver()
	var nodes []*node
	for i := range 2 {
		g := startGateway(t, "/etc/gwr/env")
		n := c.startListener(fmt.Sprintf("gwr-%d", i+1), "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}", fmt.Sprintf("  - service: gwr\n    port: %d\n", g.port))
		g.serve(n)
		nodes = append(nodes, n)
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
	result := func(want string) func(*node) bool {
		return func(n *node) bool { s := lastService(n); return s != nil && s.Result == want && idle(n) }
	}
	testcluster.Eventually(t, 30*time.Second, "both nodes apply and pass", all(result(listener.ResultOK)))

	group, err := c.reg.Rollout("default", "gwr")
	if err != nil {
		t.Fatal(err)
	}
	setDB("postgres://BROKEN")
	testcluster.Eventually(t, 30*time.Second, "the group halts", func() bool {
		h, _ := group.Halted(ctx)
		return h != nil
	})
	halt, _ := group.Halted(ctx)
	if !strings.Contains(halt.Reason, "test gateway-health failed") {
		t.Errorf("halt reason %q does not name the failed test", halt.Reason)
	}
	testcluster.Eventually(t, 30*time.Second, "both nodes end halted, with the good file", all(func(n *node) bool {
		return result(listener.ResultHalted)(n) && strings.Contains(n.file("/etc/gwr/env"), "postgres://good")
	}))
	for _, n := range nodes {
		if rolledBack := n.hadRun("rolled back: gwr: test gateway-health failed"); rolledBack != (n.name == halt.Node) {
			t.Errorf("%s rolled back: %v, want only %s to", n.name, rolledBack, halt.Node)
		}
	}
}

// scrape reads the node's metrics from its control endpoint.
func scrape(t *testing.T, n *node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.l.ControlAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

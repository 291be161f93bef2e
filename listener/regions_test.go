package listener_test

import (
	"bufio"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// deafBus subscribes where nothing is published: the node it serves gets
// no event, as when NATS loses them, and converges by anti-entropy only.
type deafBus struct{ nc *nats.Conn }

func (b deafBus) Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	return b.nc.Subscribe("deaf."+subject, cb)
}

// metric is the value of one series in a Prometheus text exposition; 0
// when absent.
func metric(text, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestRegionsEndToEnd proves the region rules through real listeners in
// several regions against a real Consul, NATS and resolver: prefer-local
// binds the node's region and falls over to another and back; local-only
// keeps its last good file with the reason shown; a node is woken only by
// its own region's bindings, says why it ignores the others', and a node
// that gets no event at all converges by anti-entropy.
func TestRegionsEndToEnd(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	c.publish(`id: api
provides: {API_URL: "http://{HOST}:{PORT}"}`)
	c.publish(`id: web
requires: {API_URL: {key: API_URL, region: prefer-local}}
templates:
  env: {contents: "API={{ binding \"API_URL\" }}\n", destination: /etc/web/env}`)
	c.publish(`id: cache
requires: {API_URL: {key: API_URL, region: local-only}}
templates:
  env: {contents: "API={{ binding \"API_URL\" }}\n", destination: /etc/cache/env}`)
	c.startResolver()
	register := func(node, region string, port int) *registry.Owner {
		t.Helper()
		o, err := c.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "api", Node: node, Address: "127.0.0.1", Port: port, Region: region})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Close(context.Background()) })
		if err := o.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		return o
	}
	const usURL, euURL, apURL = "API=http://127.0.0.1:10001\n", "API=http://127.0.0.1:10002\n", "API=http://127.0.0.1:10003\n"
	register("api-us", "us", 10001)
	apiEU := register("api-eu", "eu", 10002)
	apiAP := register("api-ap", "ap", 10003)

	queue := "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}"
	start := func(name, region, services string) *node {
		c.nodeExtra = "region: " + region + "\n"
		defer func() { c.nodeExtra = "" }()
		return c.startListener(name, queue, services)
	}
	webUS := start("web-us", "us", "  - service: web\n    port: 11001\n")
	// web-eu's changes must come by events: an anti-entropy read landing
	// between a binding's write and its event would apply it first.
	c.antiEntropy = "1h"
	webEU := start("web-eu", "eu", "  - service: web\n    port: 11002\n")
	c.antiEntropy = ""
	cacheAP := start("cache-ap", "ap", "  - service: cache\n    port: 11003\n")
	c.antiEntropy, c.nodeBus = "1s", deafBus{c.nc}
	deafEU := start("deaf-eu", "eu", "  - service: web\n")
	c.antiEntropy, c.nodeBus = "", nil
	// web has no instance in sa: a node there without a port of its own
	// gets the region-less binding, and says so.
	saLogs := &pnode{node: &node{}}
	c.nodeLog = slog.New(&logRecorder{n: saLogs, next: slog.DiscardHandler})
	webSA := start("web-sa", "sa", "  - service: web\n")
	c.nodeLog = nil

	holds := func(n *node, path, want string) func() bool {
		return func() bool { return n.file(path) == want && idle(n) }
	}
	testcluster.Eventually(t, 30*time.Second, "web-us binds api-us", holds(webUS, "/etc/web/env", usURL))
	testcluster.Eventually(t, 30*time.Second, "web-eu binds api-eu", holds(webEU, "/etc/web/env", euURL))
	testcluster.Eventually(t, 30*time.Second, "cache-ap binds api-ap", holds(cacheAP, "/etc/cache/env", apURL))
	testcluster.Eventually(t, 30*time.Second, "deaf-eu binds api-eu (the eu binding)", holds(deafEU, "/etc/web/env", euURL))
	testcluster.Eventually(t, 30*time.Second, "web-sa renders the region-less binding", func() bool { return webSA.file("/etc/web/env") != "" && idle(webSA) })
	if !saLogs.logged("this node's region has no binding of the service", "service=web", "region=sa") {
		t.Errorf("web-sa did not say it uses the region-less binding; its logs: %q", saLogs.logs)
	}
	if sb, err := c.reg.Binding(ctx, "default", "web", "eu"); err != nil || sb == nil {
		t.Fatalf("no eu binding of web: %v", err)
	}

	// local-only without a local provider: unrendered, last good kept,
	// the reason shown in the report and in Consul. (It goes first: with
	// api-ap gone, api-us is the one provider outside eu, so web-eu's
	// fallover below is deterministic.)
	if err := apiAP.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 30*time.Second, "cache-ap skips cache", func() bool {
		s := lastService(cacheAP)
		return s != nil && s.Result == listener.ResultSkipped && idle(cacheAP)
	})
	s := lastService(cacheAP)
	t.Logf("cache-ap: %s", s.Reason)
	if got := cacheAP.file("/etc/cache/env"); got != apURL {
		t.Errorf("cache-ap's file is %q, want the last good %q", got, apURL)
	}
	if !strings.Contains(s.Reason, "API_URL unresolved") || !strings.Contains(s.Reason, "last good") {
		t.Errorf("reason %q does not say API_URL is unresolved and the file kept", s.Reason)
	}
	testcluster.Eventually(t, 10*time.Second, "cache-ap's status in Consul shows the reason", func() bool {
		statuses, _, err := c.reg.Statuses(ctx)
		if err != nil {
			return false
		}
		for _, st := range statuses {
			if st.Node == "cache-ap" {
				return st.Result == listener.ResultSkipped && strings.Contains(st.Details["cache"], "API_URL unresolved")
			}
		}
		return false
	})

	// The local provider dies: web-eu falls over to us, woken by its own
	// region's event; web-us sees that event, ignores it and runs nothing.
	usRuns, usIgnored := webUS.runs.Load(), metric(scrape(t, webUS), `patchbay_listener_events_ignored_total{reason="other-region"}`)
	euEvents := metric(scrape(t, webEU), `patchbay_listener_inputs_read_total{source="events"}`)
	if err := apiEU.Close(ctx); err != nil {
		t.Fatal(err)
	}
	took := testcluster.Eventually(t, 30*time.Second, "web-eu falls over to api-us", holds(webEU, "/etc/web/env", usURL))
	t.Logf("web-eu fell over to us %s after api-eu closed", took.Round(time.Millisecond))
	if got := metric(scrape(t, webEU), `patchbay_listener_inputs_read_total{source="events"}`); got <= euEvents {
		t.Errorf("web-eu applied the fallover without an event (runs from events %v → %v)", euEvents, got)
	}
	testcluster.Eventually(t, 10*time.Second, "web-us ignores eu's event", func() bool {
		return metric(scrape(t, webUS), `patchbay_listener_events_ignored_total{reason="other-region"}`) > usIgnored
	})
	if got := webUS.runs.Load(); got != usRuns {
		t.Errorf("web-us ran %d times for eu's change, want 0", got-usRuns)
	}
	took = testcluster.Eventually(t, 30*time.Second, "deaf-eu falls over by anti-entropy", holds(deafEU, "/etc/web/env", usURL))
	t.Logf("deaf-eu (no events, anti_entropy 1s) fell over %s after web-eu", took.Round(time.Millisecond))

	// It comes back: web-eu binds it again.
	register("api-eu-2", "eu", 10002)
	took = testcluster.Eventually(t, 30*time.Second, "web-eu binds the eu provider again", holds(webEU, "/etc/web/env", euURL))
	t.Logf("web-eu back on eu %s after it registered", took.Round(time.Millisecond))
	testcluster.Eventually(t, 30*time.Second, "deaf-eu binds it again by anti-entropy", holds(deafEU, "/etc/web/env", euURL))
	if got := webUS.runs.Load(); got != usRuns {
		t.Errorf("web-us ran %d times for eu's changes, want 0", got-usRuns)
	}
	if got := webUS.file("/etc/web/env"); got != usURL {
		t.Errorf("web-us holds %q, want %q throughout", got, usURL)
	}
	if got := metric(scrape(t, deafEU), `patchbay_listener_inputs_read_total{source="events"}`); got != 0 {
		t.Errorf("deaf-eu ran %v times from events, want 0: it gets none", got)
	}
	if got := metric(scrape(t, deafEU), `patchbay_listener_inputs_read_total{source="anti-entropy"}`); got < 2 {
		t.Errorf("deaf-eu ran %v times from anti-entropy's reads, want at least 2 (the fallover and the way back)", got)
	}
}

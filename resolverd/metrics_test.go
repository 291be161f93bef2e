package resolverd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// scrape reads the metrics page into name{labels} → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// waitMetrics polls the metrics page until ok holds.
func waitMetrics(t *testing.T, url, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := scrape(t, url)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%v", what, m)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func healthOf(t *testing.T, url string) health {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		t.Fatalf("healthz: %s", resp.Status)
	}
	return h
}

// TestMetricsAndHealth runs a loop on real Consul and NATS and reads its
// metrics as Prometheus would: leadership, passes, bindings written and
// the lag from a registration to the binding it changes.
func TestMetricsAndHealth(t *testing.T) {
	f := newLoopFixture(t)
	m := NewMetrics()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if h := healthOf(t, srv.URL); h.Status != "ok" || h.Leading {
		t.Fatalf("before the loop: %+v", h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := append([]LoopOption{WithHolder("metrics"), WithDebounce(0, 0), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, m.Options()...)
	loop := NewLoop(f.reg, f.nc, opts...)
	var wg sync.WaitGroup
	wg.Go(func() { _ = loop.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	first := waitMetrics(t, srv.URL, "leadership and a first pass", func(v map[string]float64) bool {
		return v["patchbay_resolver_leader"] == 1 && v["patchbay_resolver_passes_total"] >= 1 && v[`patchbay_resolver_bindings_written_total{op="write"}`] >= 4
	})
	if first["patchbay_resolver_leadership_acquired_total"] != 1 || first["patchbay_resolver_bindings"] < 4 {
		t.Fatalf("after the first pass: %v", first)
	}
	if h := healthOf(t, srv.URL); !h.Leading || h.LastPass.IsZero() {
		t.Fatalf("while leading: %+v", h)
	}

	owner, err := f.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "api", Node: "api-1", Address: "127.0.0.1", Port: testcluster.TCPBackend(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	written := first[`patchbay_resolver_bindings_written_total{op="write"}`]
	after := waitMetrics(t, srv.URL, "a write caused by the registration, with its lag", func(v map[string]float64) bool {
		return v[`patchbay_resolver_bindings_written_total{op="write"}`] > written && v["patchbay_resolver_change_to_write_seconds_count"] >= 1
	})
	if lag := after["patchbay_resolver_change_to_write_seconds_sum"] / after["patchbay_resolver_change_to_write_seconds_count"]; lag <= 0 || lag > 10 {
		t.Fatalf("mean lag %gs: want a positive figure under the max wait", lag)
	}

	cancel()
	wg.Wait()
	if v := scrape(t, srv.URL); v["patchbay_resolver_leader"] != 0 {
		t.Fatalf("after stopping, leader = %v", v["patchbay_resolver_leader"])
	}
}

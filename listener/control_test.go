package listener

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// recorder is a Controller that records the calls; the daemon's own
// behaviour is tested elsewhere, here it is the HTTP server. block, when
// set, holds Provision until it is closed.
type recorder struct {
	mu      sync.Mutex
	calls   []string
	report  Report
	entered chan struct{}
	block   chan struct{}
}

func (r *recorder) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recorder) Pause()  { r.record("pause") }
func (r *recorder) Resume() { r.record("resume") }
func (r *recorder) Provision() {
	if r.block != nil {
		r.entered <- struct{}{}
		<-r.block
	}
	r.record("provision")
}
func (r *recorder) Report() Report { return r.report }

func (r *recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// liveControl is a running ControlServer.
type liveControl struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve has returned
	err    error         // what Serve returned, once done
}

func startControl(t *testing.T, c Controller, m *Metrics) *liveControl {
	t.Helper()
	s := NewControlServer(c, m, WithControlLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if got := s.Addr(); got != "" {
		t.Fatalf("Addr before Listen = %q", got)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Addr(); got != addr.String() || strings.HasSuffix(got, ":0") {
		t.Fatalf("Addr = %q, Listen said %s", got, addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs := &liveControl{addr: addr.String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(cs.done)
		cs.err = s.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-cs.done
	})
	return cs
}

// stop cancels Serve's context and returns what Serve returned, or an
// error when it does not return in time. Safe off the test's goroutine.
func (cs *liveControl) stop() error {
	cs.cancel()
	select {
	case <-cs.done:
		return cs.err
	case <-time.After(controlShutdownTimeout + 5*time.Second):
		return errors.New("Serve did not return after its context was cancelled")
	}
}

func do(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestControlRoutes(t *testing.T) {
	rec := &recorder{}
	cs := startControl(t, rec, NewMetrics())
	base := "http://" + cs.addr

	tests := []struct {
		name        string
		method      string
		path        string
		header      http.Header
		code        int
		contentType string
		body        string // substring
		call        string // the controller call it makes, if any
	}{
		{"healthz", "GET", "/healthz", nil, 200, "text/plain", "ok\n", ""},
		{"status", "GET", "/status", nil, 200, "application/json", `"node"`, ""},
		{"metrics", "GET", "/metrics", nil, 200, "text/plain", "patchbay_listener_provisions_total", ""},
		{"pause", "POST", "/pause", nil, 202, "application/json", `{"ok":true,"action":"pause"}`, "pause"},
		{"resume", "POST", "/resume", nil, 202, "application/json", `{"ok":true,"action":"resume"}`, "resume"},
		{"provision", "POST", "/provision", nil, 202, "application/json", `{"ok":true,"action":"provision"}`, "provision"},
		{"GET of an action", "GET", "/pause", nil, 405, "", "", ""},
		{"POST of a read", "POST", "/status", nil, 405, "", "", ""},
		{"unknown path", "GET", "/nope", nil, 404, "", "", ""},
		{"cross-origin browser post", "POST", "/pause", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, "", "", ""},
		{"same-origin browser post", "POST", "/provision", http.Header{"Sec-Fetch-Site": {"same-origin"}}, 202, "", "", "provision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.Calls())
			resp, body := do(t, tt.method, base+tt.path, tt.header)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("%s %s: %d %q; want %d with %q", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Fatalf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if tt.code == 405 && resp.Header.Get("Allow") == "" {
				t.Fatal("405 without an Allow header")
			}
			calls := rec.Calls()[before:]
			if want := []string{tt.call}; tt.call == "" && len(calls) != 0 || tt.call != "" && !reflect.DeepEqual(calls, want) {
				t.Fatalf("controller calls %v, want %q", calls, tt.call)
			}
		})
	}
}

func TestControlStatusRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := Report{
		Node: "web-1", Federation: "default", Region: "eu-1",
		Queue:     QueueState{Pending: true, Paused: true, Coalesced: 7, RetryAt: at.Add(time.Minute)},
		Instances: []InstanceState{{Service: "app-www", ID: "app-www-web-1", Registered: true}},
		LastRun: &RunReport{Started: at, Duration: 1500 * time.Millisecond, Result: ResultSkipped, Message: "1 service waits",
			Services: []ServiceRun{{Service: "app-www", Revision: 42, Result: ResultSkipped, Reason: "unresolved DATABASE_URL",
				Templates: []TemplateRun{{Name: "env", Destination: "/etc/app-www/env"}},
				Provision: &CommandResult{Ran: false}}}},
		LastSuccess: at.Add(-time.Hour),
	}
	cs := startControl(t, &recorder{report: want}, nil)
	resp, body := do(t, "GET", "http://"+cs.addr+"/status", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "\n  \"node\": \"web-1\"") {
		t.Errorf("status is not indented JSON:\n%s", body)
	}
	var got Report
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Without metrics, /metrics is simply not there.
	if resp, _ := do(t, "GET", "http://"+cs.addr+"/metrics", nil); resp.StatusCode != 404 {
		t.Fatalf("GET /metrics without metrics: %d, want 404", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.RunFinished(ResultOK, 2*time.Second, at)
	m.RunFinished(ResultFailed, time.Second, at.Add(time.Minute)) // not a success: the gauge stays
	m.RunFinished(ResultOK, 3*time.Second, at.Add(-time.Hour))    // the last call wins, even if earlier
	m.Rendered(40 * time.Millisecond)
	m.Restored("/etc/app-www/env")
	m.Restored("/etc/app-www/env")

	checks := []struct {
		name string
		got  func() float64
		want float64
	}{
		{"ok runs", func() float64 { return testutil.ToFloat64(m.provisions.WithLabelValues(ResultOK)) }, 2},
		{"failed runs", func() float64 { return testutil.ToFloat64(m.provisions.WithLabelValues(ResultFailed)) }, 1},
		{"halted runs start at 0", func() float64 { return testutil.ToFloat64(m.provisions.WithLabelValues(ResultHalted)) }, 0},
		{"last success", func() float64 { return testutil.ToFloat64(m.lastSuccess) }, float64(at.Add(-time.Hour).Unix())},
		{"restores", func() float64 { return testutil.ToFloat64(m.restores.WithLabelValues("/etc/app-www/env")) }, 2},
	}
	for _, c := range checks {
		if got := c.got(); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}

	t.Run("queue gauges and coalesced deltas", func(t *testing.T) {
		steps := []struct {
			state                    QueueState
			pending, running, paused float64
			coalesced                float64
		}{
			{QueueState{Pending: true, Coalesced: 3}, 1, 0, 0, 3},
			{QueueState{Running: true, Coalesced: 5}, 0, 1, 0, 5},
			{QueueState{Running: true, Coalesced: 5}, 0, 1, 0, 5}, // unchanged total adds nothing
			{QueueState{Paused: true, Pending: true, Coalesced: 9}, 1, 0, 1, 9},
			{QueueState{Coalesced: 2}, 0, 0, 0, 11}, // the total restarted: all 2 are new
		}
		for i, s := range steps {
			m.QueueChanged(s.state)
			got := []float64{testutil.ToFloat64(m.pending), testutil.ToFloat64(m.running), testutil.ToFloat64(m.paused), testutil.ToFloat64(m.coalesced)}
			if want := []float64{s.pending, s.running, s.paused, s.coalesced}; !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d (%+v): pending, running, paused, coalesced = %v, want %v", i, s.state, got, want)
			}
		}
	})

	t.Run("served", func(t *testing.T) {
		cs := startControl(t, &recorder{}, m)
		resp, body := do(t, "GET", "http://"+cs.addr+"/metrics", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d", resp.StatusCode)
		}
		for _, want := range []string{
			`patchbay_listener_provisions_total{result="ok"} 2`,
			"patchbay_listener_run_duration_seconds_count 3",
			"patchbay_listener_run_duration_seconds_sum 6",
			"patchbay_listener_last_success_timestamp_seconds " + strconv.FormatFloat(float64(at.Add(-time.Hour).Unix()), 'g', -1, 64) + "\n",
			"patchbay_listener_render_duration_seconds_count 1",
			"patchbay_listener_queue_pending 0",
			"patchbay_listener_queue_running 0",
			"patchbay_listener_queue_paused 0",
			"patchbay_listener_triggers_coalesced_total 11",
			`patchbay_listener_drift_restores_total{path="/etc/app-www/env"} 2`,
			"# HELP patchbay_listener_triggers_coalesced_total Triggers absorbed",
			"go_goroutines ",
			"process_start_time_seconds ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if t.Failed() {
			t.Log(body)
		}
	})

	t.Run("nil records nothing", func(t *testing.T) {
		var none *Metrics
		none.RunFinished(ResultOK, time.Second, at)
		none.Rendered(time.Second)
		none.QueueChanged(QueueState{Coalesced: 1})
		none.Restored("/x")
	})
}

func TestControlShutdown(t *testing.T) {
	t.Run("idle: Serve returns nil and the port closes", func(t *testing.T) {
		cs := startControl(t, &recorder{}, NewMetrics())
		if resp, _ := do(t, "GET", "http://"+cs.addr+"/healthz", nil); resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		if err := cs.stop(); err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		testcluster.WaitClosed(t, cs.addr, time.Second)
	})

	t.Run("a request in flight finishes", func(t *testing.T) {
		rec := &recorder{entered: make(chan struct{}), block: make(chan struct{})}
		cs := startControl(t, rec, nil)
		answered := make(chan int, 1)
		go func() {
			resp, err := http.Post("http://"+cs.addr+"/provision", "", nil)
			if err != nil {
				answered <- 0
				return
			}
			resp.Body.Close()
			answered <- resp.StatusCode
		}()
		select {
		case <-rec.entered: // the handler runs
		case code := <-answered:
			t.Fatalf("POST /provision answered %d before reaching the controller", code)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- cs.stop() }()
		testcluster.WaitClosed(t, cs.addr, 2*time.Second) // shutdown began: no new connections
		close(rec.block)
		if code := <-answered; code != http.StatusAccepted {
			t.Fatalf("request in flight at shutdown answered %d, want 202", code)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		if calls := rec.Calls(); !reflect.DeepEqual(calls, []string{"provision"}) {
			t.Fatalf("calls %v", calls)
		}
	})

	t.Run("port in use", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		s := NewControlServer(&recorder{}, nil)
		if _, err := s.Listen(busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("Listen on a busy port: %v", err)
		}
		if err := s.Serve(context.Background()); err == nil {
			t.Fatal("Serve without a bound address returned nil")
		}
	})
}

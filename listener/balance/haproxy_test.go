package balance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/lbtest"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
)

// haproxyUnderTest is a real HAProxy in master-worker mode with a stats socket.
type haproxyUnderTest struct {
	cfg, socket, addr string
	options           map[string]string
}

func startHAProxy(t *testing.T, ports ...string) *haproxyUnderTest {
	t.Helper()
	testcluster.RequirePrograms(t, "haproxy")
	dir := t.TempDir()
	h := &haproxyUnderTest{cfg: filepath.Join(dir, "haproxy.cfg"), socket: filepath.Join(dir, "admin.sock")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	l.Close()
	h.options = map[string]string{"listen": h.addr, "check_inter": "200ms", "stats_socket": h.socket, "runtime_api": "true"}
	if err := os.WriteFile(h.cfg, lbtest.RenderHAProxy(t, h.options, ports...), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("haproxy", "-W", "-db", "-f", h.cfg)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	api := &HAProxyAPI{Socket: h.socket, Timeout: time.Second}
	testcluster.Eventually(t, 10*time.Second, "HAProxy's stats socket", func() bool {
		_, err := api.Servers(context.Background(), "web")
		return err == nil
	})
	return h
}

// backend serves its name. With hold set, a request for /slow signals
// arrived and waits until hold is closed.
func backend(t *testing.T, name string, hold <-chan struct{}, arrived chan<- struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" && hold != nil {
			arrived <- struct{}{}
			<-hold
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

func viaHAProxy(addr, path string) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = "web"
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// TestHAProxyRuntimeAPI changes a real HAProxy's servers without a
// reload: a server added takes traffic once healthy; a server removed
// while it serves a request is drained first, and the request succeeds.
func TestHAProxyRuntimeAPI(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	a, b := backend(t, "a", release, arrived), backend(t, "b", nil, nil)
	released := false
	t.Cleanup(func() { // before the backends close: they wait for it
		if !released {
			close(release)
		}
	})
	h := startHAProxy(t, a)
	ctx := context.Background()
	api := &HAProxyAPI{Socket: h.socket, Timeout: 2 * time.Second}

	// Add b.
	old, next := lbtest.RenderHAProxy(t, h.options, a), lbtest.RenderHAProxy(t, h.options, a, b)
	c, why := model.DiffHAProxy(old, next)
	if why != "" {
		t.Fatal(why)
	}
	if err := ApplyServers(ctx, c, api, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 5*time.Second, "b to take traffic", func() bool {
		body, err := viaHAProxy(h.addr, "/")
		return err == nil && body == "b"
	})

	// Remove a while it serves a slow request.
	slow := make(chan error, 1)
	go func() {
		for {
			body, err := viaHAProxy(h.addr, "/slow")
			if err != nil || body == "a" {
				slow <- err
				return
			} // b answered at once: again, until a holds one
		}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached a")
	}
	c, _ = model.DiffHAProxy(next, lbtest.RenderHAProxy(t, h.options, b))
	applied := make(chan error, 1)
	go func() { applied <- ApplyServers(ctx, c, api, 10*time.Second) }()
	select {
	case err := <-applied:
		t.Fatalf("a was deleted with a request in flight (%v)", err)
	case <-time.After(300 * time.Millisecond): // a negative check: the delete must still be waiting
	}
	close(release)
	released = true
	if err := <-slow; err != nil {
		t.Fatalf("the request on the drained server failed: %v", err)
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if names, err := api.Servers(ctx, "web"); err != nil || !slices.Equal(names, []string{"web_n_" + b}) {
		t.Fatalf("servers %v (%v), want only b", names, err)
	}

	// A file that disagrees with the running servers is refused: reload.
	c, _ = model.DiffHAProxy(next, lbtest.RenderHAProxy(t, h.options, a))
	if err := ApplyServers(ctx, c, api, time.Second); !errors.Is(err, ErrHAProxyAPI) || !strings.Contains(err.Error(), "runs servers") {
		t.Fatalf("apply over a stale file: %v", err)
	}
	// No socket: the caller falls back to a reload.
	gone := &HAProxyAPI{Socket: h.socket + ".gone", Timeout: time.Second}
	if err := ApplyServers(ctx, c, gone, time.Second); !errors.Is(err, ErrHAProxyAPI) {
		t.Fatalf("apply without a socket: %v", err)
	}
}

// TestHitlessFallsBack: the listener's decision for a changed file. Only a
// server change with a reachable runtime API replaces the reload.
func TestHitlessFallsBack(t *testing.T) {
	opts := map[string]string{"stats_socket": filepath.Join(t.TempDir(), "none.sock"), "runtime_api": "true"}
	one, two := lbtest.RenderHAProxy(t, opts, "8001"), lbtest.RenderHAProxy(t, opts, "8001", "8002")
	m := &countingMetrics{}
	b := New(slog.New(slog.NewTextHandler(io.Discard, nil)), m, false)
	for _, tc := range []struct {
		name   string
		source string
		opts   map[string]string
		prev   []byte
		next   []byte
	}{
		{name: "socket unavailable", source: "builtin:haproxy", opts: opts, prev: one, next: two},
		{name: "runtime_api off", source: "builtin:haproxy", opts: map[string]string{"stats_socket": opts["stats_socket"]}, prev: one, next: two},
		{name: "not the builtin", source: "haproxy.tmpl", opts: opts, prev: one, next: two},
		{name: "structure changed", source: "builtin:haproxy", opts: opts, prev: one, next: lbtest.RenderHAProxy(t, map[string]string{"stats_socket": opts["stats_socket"], "runtime_api": "true", "maxconn": "10"}, "8001")},
	} {
		f := Change{Spec: manifest.TemplateFile{Source: tc.source, Options: tc.opts}, Destination: "haproxy.cfg", Previous: tc.prev, Content: tc.next, Existed: true}
		if b.Hitless(context.Background(), f) {
			t.Errorf("%s: applied without a reload", tc.name)
		}
	}
	if want := map[string]int{"fallback": 1, "reload": 1}; !maps.Equal(m.applied, want) {
		t.Errorf("HAProxy applied %v, want %v", m.applied, want)
	}
}

// countingMetrics counts what a Balancer reports.
type countingMetrics struct {
	applied map[string]int
	evicted int
}

func (m *countingMetrics) HAProxyApplied(how string) {
	if m.applied == nil {
		m.applied = map[string]int{}
	}
	m.applied[how]++
}

func (m *countingMetrics) PolicyEvicted() { m.evicted++ }

var _ Metrics = (*countingMetrics)(nil)

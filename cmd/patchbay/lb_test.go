package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// lbManifest is a public load balancer whose nginx and HAProxy configs
// are rendered by patchbay from the builtin templates.
const lbManifest = `id: lb
requires:
  ROUTES: {key: "*_URL", select: all, public: true, region: any}
templates:
  nginx:
    source: builtin:nginx
    destination: {{DIR}}/nginx.conf
    check: [nginx, -t, -q, -c, "{STAGED}"]
    reload: [nginx, -c, {{DIR}}/nginx.conf, -s, reload]
    backup: true
    options: {listen: "127.0.0.1:{{NGINX_PORT}}", pid: {{DIR}}/nginx.pid, error_log: {{DIR}}/nginx-error.log}
  haproxy:
    source: builtin:haproxy
    destination: {{DIR}}/haproxy.cfg
    check: [haproxy, -c, -q, -f, "{STAGED}"]
    reload: [sh, -c, "kill -USR2 $(cat {{DIR}}/haproxy.pid)"]
    options: {listen: "127.0.0.1:{{HAPROXY_PORT}}", check_inter: 500ms}
`

// TestLoadBalancersFollowBackends runs real nginx and HAProxy on configs
// rendered by patchbay, with the render command standing in for a
// listener: on every binding event of the load balancer it renders both.
func TestLoadBalancersFollowBackends(t *testing.T) {
	testcluster.RequirePrograms(t, "nginx", "haproxy")
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "--consul-addr=" + consul.Addr
	dir := t.TempDir()
	ngPort, haPort := freePort(t), freePort(t)
	lb := strings.NewReplacer("{{DIR}}", dir, "{{NGINX_PORT}}", strconv.Itoa(ngPort), "{{HAPROXY_PORT}}", strconv.Itoa(haPort)).Replace(lbManifest)
	services := writeServices(t, map[string]string{
		"web":    "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\nhealth: {http: \"http://{HOST}:{PORT}/\", interval: 1s}\n",
		"secret": "id: secret\nprovides: {SECRET_URL: \"http://{HOST}:{PORT}\"}\n",
		"lb":     lb,
	})
	if code, _, stderr := patchbay(t, "publish", addr, services); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}

	nc, err := nats.Connect(natsSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(events.BindingsSubject("default", "lb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	startPatchbay(t, "resolver", addr, "--nats-url", natsSrv.URL, "--quiet", "0")

	// Three backends of the public service, each with its owner; one
	// instance of a private service that must never be exposed.
	var owners []*process
	var ports []string
	for i := range 3 {
		port := namedBackend(t, fmt.Sprintf("web-%d", i))
		owner := startPatchbay(t, "register", addr, "web", "--node", fmt.Sprintf("n%d", i), "--address", "127.0.0.1", "--port", port, "--owner-ttl", "2s")
		owners, ports = append(owners, owner), append(ports, port)
	}
	secretPort := namedBackend(t, "secret")
	secret := startPatchbay(t, "register", addr, "secret", "--node", "n0", "--address", "127.0.0.1", "--port", secretPort)
	for _, p := range append(owners, secret) {
		p.waitLine(t, "registered", 20*time.Second)
	}

	nginxConf, haproxyConf := filepath.Join(dir, "nginx.conf"), filepath.Join(dir, "haproxy.cfg")
	// Before the servers run there is nothing to reload: --out installs
	// at the same place without running the reload command.
	tryRender := func(extra ...string) error {
		for tmpl, dest := range map[string]string{"nginx": nginxConf, "haproxy": haproxyConf} {
			args := []string{"render", addr, "--service", "lb", "--template", tmpl}
			if len(extra) > 0 {
				args = append(args, "--out", dest)
			}
			if code, _, stderr := patchbay(t, args...); code != 0 {
				return fmt.Errorf("render %s: exit %d: %s", tmpl, code, stderr)
			}
		}
		return nil
	}
	render := func(extra ...string) {
		t.Helper()
		if err := tryRender(extra...); err != nil {
			t.Fatal(err)
		}
	}
	hasAll := func(path string, ports []string) bool {
		b, _ := os.ReadFile(path)
		for _, p := range ports {
			if !strings.Contains(string(b), "127.0.0.1:"+p) {
				return false
			}
		}
		return true
	}
	// The binding may still be one the resolver wrote before the web
	// instances registered: only the private service, unresolved.
	testcluster.Eventually(t, 15*time.Second, "the binding to list three backends", func() bool {
		return tryRender("--out") == nil && hasAll(nginxConf, ports) && hasAll(haproxyConf, ports)
	})
	for _, path := range []string{nginxConf, haproxyConf} {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), secretPort) || strings.Contains(string(b), "secret") {
			t.Fatalf("the private service is in the public load balancer %s:\n%s", path, b)
		}
	}

	nginxPID := startServer(t, dir, "nginx", "-c", nginxConf, "-g", "daemon off;")
	haproxyPID := startServer(t, dir, "haproxy", "-W", "-db", "-f", haproxyConf, "-p", filepath.Join(dir, "haproxy.pid"))
	lbs := map[string]string{"nginx": "127.0.0.1:" + strconv.Itoa(ngPort), "haproxy": "127.0.0.1:" + strconv.Itoa(haPort)}
	for name, lbAddr := range lbs {
		testcluster.Eventually(t, 10*time.Second, name+" to route to all three backends", func() bool {
			seen := map[string]bool{}
			for range 12 {
				body, _ := get(lbAddr, "web")
				seen[body] = true
			}
			return seen["web-0"] && seen["web-1"] && seen["web-2"]
		})
		if body, code := get(lbAddr, "secret"); code == http.StatusOK {
			t.Fatalf("%s routes the private service: %q", name, body)
		}
	}

	// Requests run throughout; then the first backend's owner dies while the
	// backend keeps serving.
	loop := startRequestLoop(t, lbs)
	killed := time.Now()
	if err := owners[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for hasAll(nginxConf, ports[:1]) || hasAll(haproxyConf, ports[:1]) {
		nextEvent(t, sub)
		render()
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("backend 0 still in a config 5 s after its owner died")
		}
	}
	gone := time.Since(killed)
	t.Logf("backend gone from both configs %s after its owner was killed", gone.Round(10*time.Millisecond))
	for name, lbAddr := range lbs {
		testcluster.Eventually(t, 5*time.Second, name+" to stop sending to backend 0", func() bool {
			for range 10 {
				if body, _ := get(lbAddr, "web"); body == "web-0" {
					return false
				}
			}
			return true
		})
	}
	requests, failures := loop.stop()
	t.Logf("request loop: %d requests, %d failed", requests, len(failures))
	if requests < 50 || len(failures) > 0 {
		t.Fatalf("request loop: %d requests, failures: %v", requests, failures)
	}
	assertRunning(t, "nginx", nginxPID)
	assertRunning(t, "haproxy", haproxyPID)
	if _, err := os.Stat(nginxConf + ".bak"); err != nil {
		t.Errorf("no backup of the previous nginx.conf: %v", err)
	}

	// A change that nginx -t rejects installs nothing and is reported.
	before, _ := os.ReadFile(nginxConf)
	broken := writeServices(t, map[string]string{"lb": strings.Replace(lb, "127.0.0.1:"+strconv.Itoa(ngPort), "127.0.0.1:notaport", 1)})
	if code, _, stderr := patchbay(t, "publish", addr, broken); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	code, _, stderr := patchbay(t, "render", addr, "--service", "lb", "--template", "nginx")
	if code != exitUser || !strings.Contains(stderr, "check failed") || !strings.Contains(stderr, "kept the installed file") {
		t.Fatalf("render with a failing check: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(nginxConf); string(after) != string(before) {
		t.Fatal("a failed check changed the installed nginx.conf")
	}
	if body, code := get(lbs["nginx"], "web"); code != http.StatusOK {
		t.Fatalf("nginx after a failed check: %d %q", code, body)
	}
}

// namedBackend serves its name on every path until the test ends (it is
// not stopped with its owner) and returns its port.
func namedBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

// startServer runs a load balancer in the foreground as the test's child
// and returns its (master) PID.
func startServer(t *testing.T, dir, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// assertRunning checks that a server is still the same process: it was
// reloaded, never restarted.
func assertRunning(t *testing.T, name string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("%s (pid %d) is gone: it was restarted or crashed: %v", name, pid, err)
	}
}

var lbClient = &http.Client{
	Timeout:   3 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true}, // a new connection each time, across reloads
}

// get requests / through a load balancer with a Host header.
func get(lbAddr, host string) (string, int) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+lbAddr+"/", nil)
	req.Host = host
	resp, err := lbClient.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// requestLoop sends requests through every load balancer in turn until
// stopped, and records each failure.
type requestLoop struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	requests atomic.Int64
	mu       sync.Mutex
	failures []string
}

func startRequestLoop(t *testing.T, lbs map[string]string) *requestLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &requestLoop{cancel: cancel}
	t.Cleanup(func() { l.stop() })
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			for name, lbAddr := range lbs {
				body, code := get(lbAddr, "web")
				l.requests.Add(1)
				if code != http.StatusOK {
					l.mu.Lock()
					l.failures = append(l.failures, fmt.Sprintf("%s: %d %s", name, code, body))
					l.mu.Unlock()
				}
			}
		}
	}()
	return l
}

// stop ends the loop and returns its totals.
func (l *requestLoop) stop() (int64, []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests.Load(), l.failures
}

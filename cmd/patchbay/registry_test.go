package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// process is patchbay running as a child process.
type process struct {
	cmd   *exec.Cmd
	lines chan string // stdout, line by line
}

func startPatchbay(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 100)}
	go func() { // ends when the process closes stdout
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

// waitLine waits for a line of output containing s.
func (p *process) waitLine(t *testing.T, s string, deadline time.Duration) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("process ended before printing %q", s)
			}
			if strings.Contains(line, s) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %q within %s", s, deadline)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// httpBackend serves 200 on every path until the test ends, standing in for
// a service with an HTTP health check; it returns the port.
func httpBackend(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// writeServices writes one directory per service (name → manifest YAML)
// and returns their parent.
func writeServices(t *testing.T, services map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, doc := range services {
		if err := os.MkdirAll(dir+"/"+name, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/"+name+"/patchbay.yaml", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// liveInstances lists the live instances of service.
func liveInstances(t *testing.T, reg *registry.Client, service string) []binding.Instance {
	t.Helper()
	snap, err := reg.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []binding.Instance
	for _, in := range snap.Instances {
		if in.Service == service {
			out = append(out, in)
		}
	}
	return out
}

func TestRegistryCommands(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeServices(t, map[string]string{
		"cron": "id: cron\nunique: true\nprovides: {CRON_URL: \"http://{HOST}:{PORT}\"}\n",
		"web":  "id: web\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\nhealth: {http: \"http://{HOST}:{PORT}/healthz\", interval: 200ms}\n",
	})

	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"publish", []string{"publish", addr, "../../examples/services", dir}, 0, "published service app-www (federation default)", ""},
		{"publish again", []string{"publish", addr, "../../examples/services"}, 0, "unchanged service app-www", ""},
		{"publish invalid", []string{"publish", addr, "/nonexistent"}, 1, "", "1 problem found; nothing was published"},
		{"datastore get", []string{"datastore", "get", addr, "PRIMARY_DATABASE_URL"}, 0, "postgres://db.internal:5432/app", ""},
		{"datastore set", []string{"datastore", "set", addr, "CACHE_URL", "redis://cache:6379"}, 0, "set datastore CACHE_URL (federation default)", ""},
		{"datastore get json", []string{"datastore", "get", addr, "--json", "CACHE_URL"}, 0, `"value": "redis://cache:6379"`, ""},
		{"datastore bad key", []string{"datastore", "set", addr, "cache", "x"}, 1, "", `datastore key "cache" is not an upper-case name`},
		{"datastore rm", []string{"datastore", "rm", addr, "CACHE_URL"}, 0, "removed datastore CACHE_URL", ""},
		{"datastore rm missing", []string{"datastore", "rm", addr, "CACHE_URL"}, 1, "", "no datastore CACHE_URL in federation default"},
		{"unpublish", []string{"unpublish", addr, "lb-internal"}, 0, "unpublished service lb-internal", ""},
		{"unpublish missing", []string{"unpublish", addr, "lb-internal"}, 1, "", "service lb-internal is not published in federation default"},
		{"register unpublished", []string{"register", addr, "ghost", "--address", "127.0.0.1", "--port", "1"}, 1, "", "service ghost is not published"},
		{"unreachable", []string{"datastore", "get", "--consul-addr=127.0.0.1:1", "--timeout=2s", "X_URL"}, 2, "", "consul unreachable at 127.0.0.1:1"},
	}
	for _, s := range steps { // in order: each step builds on the last
		code, stdout, stderr := patchbay(t, s.args...)
		oneLine := code != 2 || strings.Count(stderr, "\n") == 1
		if code != s.code || !strings.Contains(stdout, s.stdout) || !strings.Contains(stderr, s.stderr) || !oneLine {
			t.Fatalf("%s: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", s.name, code, s.code, stdout, stderr)
		}
	}

	t.Run("SIGKILL of the owner removes the instance", func(t *testing.T) {
		port := httpBackend(t) // web has an HTTP health check
		p := startPatchbay(t, "register", addr, "web", "--node", "web-1", "--address", "127.0.0.1", "--port", port)
		p.waitLine(t, "registered web@web-1:"+port, 15*time.Second)
		if got := liveInstances(t, reg, "web"); len(got) != 1 {
			t.Fatalf("instances = %+v", got)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := testcluster.Eventually(t, 5*time.Second, "instance gone after SIGKILL", func() bool { return len(liveInstances(t, reg, "web")) == 0 })
		t.Logf("instance gone %s after its owner was killed (owner TTL %s)", took.Round(time.Millisecond), registry.DefaultOwnerTTL)
	})

	t.Run("SIGTERM deregisters at once and exits 0", func(t *testing.T) {
		port := httpBackend(t)
		p := startPatchbay(t, "register", addr, "web", "--node", "web-2", "--address", "127.0.0.1", "--port", port)
		p.waitLine(t, "registered", 15*time.Second)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLine(t, "deregistered web@web-2:"+port, 5*time.Second)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("exit: %v", err)
		}
		if got := liveInstances(t, reg, "web"); len(got) != 0 {
			t.Fatalf("instances after SIGTERM = %+v", got)
		}
	})

	t.Run("unique standby takes over from a killed holder", func(t *testing.T) {
		holder := startPatchbay(t, "register", addr, "cron", "--node", "a", "--address", "127.0.0.1", "--port", strconv.Itoa(freePort(t)))
		holder.waitLine(t, "registered", 15*time.Second)
		standby := startPatchbay(t, "register", addr, "cron", "--node", "b", "--address", "127.0.0.1", "--port", strconv.Itoa(freePort(t)))
		standby.waitLine(t, "registering", 5*time.Second)
		if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := testcluster.Eventually(t, 15*time.Second, "standby took over", func() bool {
			got := liveInstances(t, reg, "cron")
			return len(got) == 1 && got[0].Node == "b"
		})
		t.Logf("unique takeover %s after the holder was killed (owner TTL %s)", took.Round(time.Millisecond), registry.DefaultOwnerTTL)
	})
}

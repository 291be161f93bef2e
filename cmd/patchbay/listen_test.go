package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolverd"
)

// End-to-end tests of `patchbay listen` as users run it: the real binary
// (the test binary acting as patchbay, see testmain_test.go) with a
// listener.yaml of its own, against a real Consul and NATS and a resolver.

// listenQueue keeps runs quick: a test waits for them, never sleeps.
const listenQueue = "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}"

// listenCluster is one Consul and NATS with a resolver, shared by the
// subtests of one test function; each subtest uses services of its own.
type listenCluster struct {
	consul *testcluster.Consul
	nats   *testcluster.NATS
	reg    *registry.Client
}

func startListenCluster(t *testing.T) *listenCluster {
	t.Helper()
	c := &listenCluster{consul: testcluster.StartConsul(t), nats: testcluster.StartNATS(t)}
	var err error
	c.reg, err = registry.New(registry.WithAddress(c.consul.Addr), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.nats.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	loop := resolverd.NewLoop(c.reg, nc, resolverd.WithDebounce(100*time.Millisecond, time.Second), resolverd.WithLogger(discardLogger()))
	done := make(chan struct{})
	go func() { defer close(done); _ = loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; nc.Close() })
	return c
}

// publish publishes manifests (service id → YAML) with the CLI and waits
// for the resolver to store a binding of each.
func (c *listenCluster) publish(t *testing.T, manifests map[string]string) {
	t.Helper()
	if code, _, stderr := patchbay(t, "publish", "--consul-addr="+c.consul.Addr, writeServices(t, manifests)); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	for id := range manifests {
		testcluster.Eventually(t, 10*time.Second, "a binding of "+id, func() bool {
			b, err := c.reg.Binding(context.Background(), "default", id, "")
			if err != nil {
				t.Fatal(err)
			}
			return b != nil
		})
	}
}

// catalog counts the instances of service in the Consul catalog.
func (c *listenCluster) catalog(t *testing.T, service string) int {
	t.Helper()
	entries, _, err := c.consul.Client.Catalog().Service(service, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// registered reports whether service has exactly one live instance, on
// node at port, in the registry's KV and in the Consul catalog.
func (c *listenCluster) registered(t *testing.T, service, node string, port int) bool {
	t.Helper()
	in := liveInstances(t, c.reg, service)
	return len(in) == 1 && in[0].Node == node && in[0].Port == port && in[0].Address == "127.0.0.1" &&
		c.catalog(t, service) == 1
}

// gone reports whether service has no instance in KV nor in the catalog.
func (c *listenCluster) gone(t *testing.T, service string) bool {
	t.Helper()
	return len(liveInstances(t, c.reg, service)) == 0 && c.catalog(t, service) == 0
}

// envManifest is a service whose builtin:env template renders its
// environment to /etc/<id>/env (under the listener's root).
func envManifest(id, version string) string {
	return fmt.Sprintf("id: %s\nenvironment: {VERSION: %q}\ntemplates:\n  env: {source: \"builtin:env\", destination: /etc/%s/env}\n", id, version, id)
}

// listenNode is one node's listener.yaml and root directory.
type listenNode struct {
	name    string
	dir     string
	root    string
	path    string // listener.yaml
	control string // host:port of the control endpoint
	globals string // consul-addr and nats-url lines; "" to pass them as flags
}

func newListenNode(t *testing.T, c *listenCluster, name string, globalsInFile bool) *listenNode {
	t.Helper()
	dir := t.TempDir()
	n := &listenNode{
		name: name, dir: dir, root: filepath.Join(dir, "root"), path: filepath.Join(dir, "listener.yaml"),
		control: "127.0.0.1:" + strconv.Itoa(freePort(t)),
	}
	if globalsInFile && c != nil {
		n.globals = fmt.Sprintf("consul-addr: %q\nnats-url: %q\n", c.consul.Addr, c.nats.URL)
	}
	return n
}

// config is the node's listener.yaml with services (indented entries of
// the services list) and extra top-level lines.
func (n *listenNode) config(services, extra string) string {
	return fmt.Sprintf("# listener.yaml of %s\n%snode: %s\naddress: 127.0.0.1\nroot: %q\nstate_dir: %q\ncontrol: %q\nqueue: %s\nretry: {initial: 500ms, max: 2s}\n%sservices:\n%s",
		n.name, n.globals, n.name, n.root, filepath.Join(n.dir, "state"), n.control, listenQueue, extra, services)
}

// write writes listener.yaml and returns its text.
func (n *listenNode) write(t *testing.T, services, extra string) string {
	t.Helper()
	doc := n.config(services, extra)
	if err := os.WriteFile(n.path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return doc
}

// file reads a rendered destination under the node's root; "" if absent.
func (n *listenNode) file(dest string) string {
	b, _ := os.ReadFile(filepath.Join(n.root, dest))
	return string(b)
}

// flags are the global settings for a node whose file leaves them out.
func (c *listenCluster) flags() []string {
	return []string{"--consul-addr=" + c.consul.Addr, "--nats-url=" + c.nats.URL}
}

// lineOf is the 1-based number of the first line of doc containing s.
func lineOf(t *testing.T, doc, s string) int {
	t.Helper()
	for i, line := range strings.Split(doc, "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	t.Fatalf("no line with %q in:\n%s", s, doc)
	return 0
}

// syncBuffer collects a child's output, written by exec's copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listenDaemon is `patchbay listen` running as a child process.
type listenDaemon struct {
	cmd     *exec.Cmd
	started time.Time
	stdout  syncBuffer
	stderr  syncBuffer
	done    chan struct{} // closed once the process has exited and been waited for
}

// listenChildEnv is the environment of a child: settings come from
// listener.yaml and flags only, whatever the environment of the test.
func listenChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PATCHBAY_") || strings.HasPrefix(k, "CONSUL_HTTP_") || k == "NATS_URL" || k == "NATS_CREDS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, runMainEnv+"=1")
}

func startListen(t *testing.T, args ...string) *listenDaemon {
	t.Helper()
	return startDaemon(t, append([]string{"listen"}, args...)...)
}

// startDaemon runs a patchbay command line as a child process, stopped
// with SIGTERM at the end of the test if still running.
func startDaemon(t *testing.T, args ...string) *listenDaemon {
	t.Helper()
	d := &listenDaemon{done: make(chan struct{})}
	d.cmd = exec.Command(os.Args[0], args...)
	d.cmd.Env = listenChildEnv()
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		if !d.exited() { // stop it cleanly, so that its instances go at once
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		}
		if t.Failed() {
			t.Logf("stdout and stderr of patchbay %s:\n%s\n%s", strings.Join(args, " "), d.stdout.String(), d.stderr.String())
		}
	})
	return d
}

func (d *listenDaemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *listenDaemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (d *listenDaemon) wait(t *testing.T, deadline time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(deadline):
		t.Fatalf("patchbay listen still running %s after it was started (deadline %s)", time.Since(d.started).Round(time.Millisecond), deadline)
		return -1
	}
}

// waitLog waits for stderr to contain s; it fails at once if the process
// exits without it.
func (d *listenDaemon) waitLog(t *testing.T, s string, deadline time.Duration) {
	t.Helper()
	testcluster.Eventually(t, deadline, fmt.Sprintf("a log line with %q", s), func() bool {
		if strings.Contains(d.stderr.String(), s) {
			return true
		}
		if d.exited() {
			t.Fatalf("patchbay listen exited (%d) without logging %q", d.cmd.ProcessState.ExitCode(), s)
		}
		return false
	})
}

var controlClient = &http.Client{Timeout: 5 * time.Second}

// controlGet GETs path from a control endpoint; code 0 when it does not answer.
func controlGet(addr, path string) (code int, body string) {
	resp, err := controlClient.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// controlStatus is the daemon's GET /status; ok is false while it does not answer.
func controlStatus(t *testing.T, addr string) (r listener.Report, ok bool) {
	t.Helper()
	code, body := controlGet(addr, "/status")
	if code != http.StatusOK {
		return r, false
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET /status is not a report: %v\n%s", err, body)
	}
	return r, true
}

// idleAfterRun reports whether the daemon has finished a run and has none
// queued, running or due.
func idleAfterRun(r listener.Report) bool {
	return r.LastRun != nil && !r.Queue.Pending && !r.Queue.Running && r.Queue.RetryAt.IsZero()
}

// provisionsTotal reads patchbay_listener_provisions_total{result} from
// the daemon's /metrics; -1 when absent.
// gomaxprocs is the daemon's GOMAXPROCS, as its /metrics says; -1 if absent.
func gomaxprocs(t *testing.T, addr string) int {
	t.Helper()
	code, body := controlGet(addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	m := regexp.MustCompile(`(?m)^go_sched_gomaxprocs_threads (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func provisionsTotal(t *testing.T, addr, result string) int {
	t.Helper()
	code, body := controlGet(addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	m := regexp.MustCompile(`(?m)^patchbay_listener_provisions_total\{result="` + result + `"\} (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// nodeRow reports whether a row of patchbay status starts with node and result.
func nodeRow(out, node, result string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == node && f[1] == result {
			return true
		}
	}
	return false
}

// TestListenConfigErrors: a listener.yaml with a mistake stops `patchbay
// listen` at once with exit 1 and one line naming the file and the line.
func TestListenConfigErrors(t *testing.T) {
	t.Setenv("PATCHBAY_CONFIG", "") // the missing --config case must not find one
	n := newListenNode(t, nil, "bad-1", false)
	cases := []struct {
		name     string
		services string
		extra    string
		edit     [2]string // replaces the first old with new in the file
		at       string    // the line the message names holds this
		message  string    // what follows "<path>:<line>: "
	}{
		{
			name: "unknown key in a service", at: "bogus:", message: `unknown key "bogus" in a service; the keys are service, port, address, provision, after`,
			services: "  - service: app\n    bogus: 1\n",
		},
		{
			name: "unknown key in queue", at: "queue:", message: `unknown key "extra" in queue`,
			edit: [2]string{"queue: {", "queue: {extra: 1, "}, services: "  - service: app\n",
		},
		{
			name: "cycle in after", at: "after: [b]", message: "after: cycle a → b → c → a; remove one of these after entries",
			services: "  - service: a\n    after: [b]\n  - service: b\n    after: [c]\n  - service: c\n    after: [a]\n",
		},
		{
			name: "port out of range", at: "70000", message: "port: 70000 is out of range; give 1 to 65535, or 0 to render and provision without registering an instance",
			services: "  - service: app\n    port: 70000\n",
		},
		{
			name: "port not a number", at: "port: http", message: `port: "http" is not a whole number`,
			services: "  - service: app\n    port: http\n",
		},
		{
			name: "unknown top-level key", at: "stat_dir:", message: `unknown key "stat_dir"; did you mean "state_dir"?`,
			extra: "stat_dir: /tmp\n", services: "  - service: app\n",
		},
		{
			name: "invalid YAML", at: "port: [", message: "invalid YAML",
			services: "  - service: app\n    port: [\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := n.config(tc.services, tc.extra)
			if tc.edit[0] != "" {
				doc = strings.Replace(doc, tc.edit[0], tc.edit[1], 1)
			}
			if err := os.WriteFile(n.path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("patchbay: %s:%d: %s", n.path, lineOf(t, doc, tc.at), tc.message)
			code, stdout, stderr := patchbay(t, "listen", "--config", n.path, "--consul-addr=127.0.0.1:1", "--timeout=1s")
			good := code == exitUser && strings.HasPrefix(stderr, want) && strings.Count(stderr, "\n") == 1 && stdout == ""
			if !good {
				t.Fatalf("exit %d (want 1), want one line starting\n%s\nstderr:\n%s\nstdout:\n%s\nlistener.yaml:\n%s", code, want, stderr, stdout, doc)
			}
		})
	}

	t.Run("missing --config", func(t *testing.T) {
		code, stdout, stderr := patchbay(t, "listen", "--consul-addr=127.0.0.1:1")
		want := "patchbay: listen needs --config listener.yaml (see examples/listener.yaml)\n"
		if code != exitUser || stderr != want || stdout != "" {
			t.Fatalf("exit %d (want 1)\nstderr:\n%s\nwant:\n%s", code, stderr, want)
		}
	})

	t.Run("no such file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "listener.yaml")
		code, _, stderr := patchbay(t, "listen", "--config", missing)
		if code != exitUser || !strings.HasPrefix(stderr, "patchbay: ") || !strings.Contains(stderr, missing+": no such file or directory") || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("exit %d (want 1)\nstderr:\n%s", code, stderr)
		}
	})
}

// TestListenOnce: --once renders, runs the provision commands and exits
// without registering; its exit code and report say how the run went.
func TestListenOnce(t *testing.T) {
	c := startListenCluster(t)
	c.publish(t, map[string]string{"once-a": envManifest("once-a", "1")})
	port := freePort(t)
	service := fmt.Sprintf("  - service: once-a\n    port: %d\n", port)
	withProvision := func(cmd string) string {
		return service + "    provision: {command: [sh, -c, " + strconv.Quote(cmd) + "], timeout: 30s}\n"
	}
	const marker = "provisioned" // in the node's directory, where the next command writes

	cases := []struct {
		name     string
		services string
		extra    string
		json     bool
		code     int
		result   string
		stderr   []string                          // each a substring
		during   func(t *testing.T, n *listenNode) // while the provision command waits for DIR/go
		check    func(t *testing.T, n *listenNode, r *listener.RunReport)
	}{
		{
			name: "renders and exits 0 with a summary", services: service, code: 0, result: listener.ResultOK,
			stderr: []string{"provision ok in ", "\n  once-a: ok (revision "},
		},
		{
			// The command holds the run until the test has looked at the
			// registry: nothing is registered while --once runs either.
			name: "a provision command gets the binding, and nothing is registered meanwhile", code: 0, result: listener.ResultOK,
			services: withProvision(`echo "$PATCHBAY_NODE $PATCHBAY_SERVICE $VERSION" > DIR/` + marker + `; while [ ! -e DIR/go ]; do sleep 0.02; done`),
			during: func(t *testing.T, n *listenNode) {
				if !c.gone(t, "once-a") {
					t.Errorf("--once registered an instance while running: %+v", liveInstances(t, c.reg, "once-a"))
				}
			},
			stderr: []string{"provision ok in ", "  once-a: ok (revision "},
			check: func(t *testing.T, n *listenNode, _ *listener.RunReport) {
				b, err := os.ReadFile(filepath.Join(n.dir, marker))
				if want := n.name + " once-a 1\n"; err != nil || string(b) != want {
					t.Errorf("the provision command wrote %q (%v), want %q", b, err, want)
				}
			},
		},
		{
			name: "a failing provision command exits 1", services: withProvision("exit 1"), code: exitUser, result: listener.ResultFailed,
			stderr: []string{"provision failed in ", "\n  once-a: failed (revision ", "\npatchbay: listener: provision failed: once-a failed: provision command: ", "exit status 1\n"},
		},
		{
			name: "--json prints the run's report", services: service, json: true, code: 0, result: listener.ResultOK,
			check: func(t *testing.T, n *listenNode, r *listener.RunReport) {
				s := r.Services[0]
				if len(s.Templates) != 1 || s.Templates[0].Name != "env" || s.Templates[0].Destination != filepath.Join(n.root, "etc/once-a/env") ||
					!s.Templates[0].Changed || s.Templates[0].Error != "" || s.Revision == 0 || s.Provision != nil || r.Started.IsZero() || r.Duration <= 0 {
					t.Errorf("report of once-a: %+v", r)
				}
			},
		},
		{
			name: "--json with a failing provision command exits 1", services: withProvision("exit 1"), json: true, code: exitUser, result: listener.ResultFailed,
			check: func(t *testing.T, _ *listenNode, r *listener.RunReport) {
				p := r.Services[0].Provision
				if p == nil || !p.Ran || !strings.Contains(p.Error, "exit status 1") || !strings.Contains(r.Message, "once-a failed: provision command") {
					t.Errorf("report of once-a: %+v, provision %+v", r, p)
				}
			},
		},
		{
			name: "the file's documented global keys timeout and log-level", services: service, code: 0, result: listener.ResultOK,
			extra:  "timeout: 10s\nlog-level: info\n",
			stderr: []string{"provision ok in "},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newListenNode(t, c, "once-"+strconv.Itoa(freePort(t)), false)
			n.write(t, strings.ReplaceAll(tc.services, "DIR/", n.dir+"/"), tc.extra)
			args := append([]string{"listen", "--config", n.path, "--once"}, c.flags()...)
			if tc.json {
				args = append(args, "--json")
			}
			type result struct {
				code           int
				stdout, stderr string
			}
			ran := make(chan result, 1)
			go func() {
				var r result
				r.code, r.stdout, r.stderr = patchbay(t, args...)
				ran <- r
			}()
			if tc.during != nil {
				testcluster.Eventually(t, 15*time.Second, "the provision command to start", func() bool {
					_, err := os.Stat(filepath.Join(n.dir, marker))
					return err == nil
				})
				tc.during(t, n)
				if err := os.WriteFile(filepath.Join(n.dir, "go"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var r result
			select {
			case r = <-ran:
			case <-time.After(30 * time.Second):
				t.Fatal("patchbay listen --once still running after 30s")
			}
			code, stdout, stderr := r.code, r.stdout, r.stderr
			if code != tc.code {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr has no %q", s)
				}
			}
			var report *listener.RunReport
			if tc.json {
				report = new(listener.RunReport)
				if err := json.Unmarshal([]byte(stdout), report); err != nil {
					t.Fatalf("stdout is not a RunReport: %v\n%s", err, stdout)
				}
				if report.Result != tc.result || len(report.Services) != 1 || report.Services[0].Service != "once-a" || report.Services[0].Result != tc.result {
					t.Errorf("report: %+v, want result %s for once-a", report, tc.result)
				}
			} else if stdout != "" {
				t.Errorf("stdout without --json: %q", stdout)
			}
			// The file is rendered under root, even when the provision
			// command fails after it, and nowhere else.
			if got := n.file("/etc/once-a/env"); !strings.Contains(got, "export VERSION='1'") {
				t.Errorf("%s/etc/once-a/env:\n%s", n.root, got)
			}
			assertExists(t, "/etc/once-a/env", false)
			// --once registers nothing: the process has exited, so this is final.
			if !c.gone(t, "once-a") {
				t.Errorf("--once registered an instance: %+v", liveInstances(t, c.reg, "once-a"))
			}
			if tc.check != nil {
				tc.check(t, n, report)
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}

// TestListenDaemon runs `patchbay listen` as a daemon and drives it as an
// operator does: signals, the control endpoint, patchbay status.
func TestListenDaemon(t *testing.T) {
	c := startListenCluster(t)

	t.Run("SIGTERM deregisters at once and exits 0", func(t *testing.T) {
		c.publish(t, map[string]string{"sig-a": envManifest("sig-a", "1")})
		n := newListenNode(t, c, "sig-1", true) // consul-addr and nats-url in listener.yaml
		port := freePort(t)
		n.write(t, fmt.Sprintf("  - service: sig-a\n    port: %d\n", port), "")
		d := startListen(t, "--config", n.path)
		testcluster.Eventually(t, 15*time.Second, "sig-a registered and its env file rendered", func() bool {
			return c.registered(t, "sig-a", "sig-1", port) && strings.Contains(n.file("/etc/sig-a/env"), "export VERSION='1'")
		})
		assertExists(t, "/etc/sig-a/env", false)

		d.signal(t, syscall.SIGTERM)
		if code := d.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0", code)
		}
		// Read once, right after the exit: a TTL (3 s for KV, a minute for
		// the catalog) has not had the time to remove anything.
		if in, n := liveInstances(t, c.reg, "sig-a"), c.catalog(t, "sig-a"); len(in) != 0 || n != 0 {
			t.Fatalf("after exit: %d instances in KV, %d in the catalog, want none: %+v", len(in), n, in)
		}
		if !strings.Contains(d.stderr.String(), "instance deregistered") {
			t.Errorf("no \"instance deregistered\" in the log")
		}
	})

	t.Run("SIGHUP reloads listener.yaml and refuses an invalid one", func(t *testing.T) {
		c.publish(t, map[string]string{"hup-a": envManifest("hup-a", "1"), "hup-b": envManifest("hup-b", "1")})
		n := newListenNode(t, c, "hup-1", true)
		portA, portB := freePort(t), freePort(t)
		a := fmt.Sprintf("  - service: hup-a\n    port: %d\n", portA)
		n.write(t, a, "")
		d := startListen(t, "--config", n.path)
		testcluster.Eventually(t, 15*time.Second, "hup-a registered and rendered", func() bool {
			return c.registered(t, "hup-a", "hup-1", portA) && strings.Contains(n.file("/etc/hup-a/env"), "VERSION='1'")
		})
		if !c.gone(t, "hup-b") || n.file("/etc/hup-b/env") != "" {
			t.Fatal("hup-b is registered or rendered before it is in listener.yaml")
		}

		n.write(t, a+fmt.Sprintf("  - service: hup-b\n    port: %d\n", portB), "")
		d.signal(t, syscall.SIGHUP)
		testcluster.Eventually(t, 15*time.Second, "hup-b registered and rendered after SIGHUP", func() bool {
			return c.registered(t, "hup-b", "hup-1", portB) && strings.Contains(n.file("/etc/hup-b/env"), "VERSION='1'")
		})
		d.waitLog(t, "listener.yaml reloaded", 5*time.Second)

		bad := n.write(t, a+"  - service: hup-b\n    port: 70000\n", "")
		d.signal(t, syscall.SIGHUP)
		want := fmt.Sprintf("%s:%d: port: 70000 is out of range", n.path, lineOf(t, bad, "70000"))
		d.waitLog(t, "SIGHUP: listener.yaml not reloaded; the running config stays", 10*time.Second)
		d.waitLog(t, want, time.Second)
		if d.exited() {
			t.Fatalf("exited (%d) on an invalid listener.yaml", d.cmd.ProcessState.ExitCode())
		}
		// Positive control: a change to hup-b still reaches the node, so it
		// still hosts hup-b at its old port, as the running config says.
		c.publish(t, map[string]string{"hup-b": envManifest("hup-b", "2")})
		testcluster.Eventually(t, 15*time.Second, "hup-b's change applied with the old config", func() bool {
			return strings.Contains(n.file("/etc/hup-b/env"), "VERSION='2'")
		})
		if !c.registered(t, "hup-a", "hup-1", portA) || !c.registered(t, "hup-b", "hup-1", portB) {
			t.Errorf("instances after the refused reload: %+v %+v", liveInstances(t, c.reg, "hup-a"), liveInstances(t, c.reg, "hup-b"))
		}
		if got := strings.Count(d.stderr.String(), "listener.yaml reloaded"); got != 1 {
			t.Errorf("%d reloads logged, want 1: the invalid file must not be applied", got)
		}
		r, ok := controlStatus(t, n.control)
		if !ok || len(r.Instances) != 2 || !r.Instances[0].Registered || !r.Instances[1].Registered {
			t.Errorf("GET /status: %+v", r)
		}
	})

	t.Run("control endpoint: pause holds a change, resume applies it, provision runs", func(t *testing.T) {
		c.publish(t, map[string]string{"ctl-a": envManifest("ctl-a", "1")})
		n := newListenNode(t, c, "ctl-1", true)
		n.write(t, "  - service: ctl-a\n", "") // port 0: render and provision only
		startListen(t, "--config", n.path)
		var r listener.Report
		testcluster.Eventually(t, 15*time.Second, "a first run", func() bool {
			var ok bool
			r, ok = controlStatus(t, n.control)
			return ok && idleAfterRun(r) && r.LastRun.Result == listener.ResultOK && strings.Contains(n.file("/etc/ctl-a/env"), "VERSION='1'")
		})
		if r.Node != "ctl-1" || len(r.Instances) != 1 || r.Instances[0].Service != "ctl-a" || r.Instances[0].Registered || r.LastSuccess.IsZero() {
			t.Errorf("GET /status: %+v", r)
		}
		if !c.gone(t, "ctl-a") {
			t.Errorf("port 0 registered an instance")
		}
		if code, body := controlGet(n.control, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET /healthz: %d %q", code, body)
		}
		// --gomaxprocs defaults to 1, unless GOMAXPROCS chose already.
		if want, _ := strconv.Atoi(cmp.Or(os.Getenv("GOMAXPROCS"), "1")); gomaxprocs(t, n.control) != want {
			t.Errorf("go_sched_gomaxprocs_threads = %d, want %d", gomaxprocs(t, n.control), want)
		}
		okRuns := provisionsTotal(t, n.control, listener.ResultOK)
		if okRuns < 1 {
			t.Fatalf("patchbay_listener_provisions_total{result=\"ok\"} = %d after a run", okRuns)
		}

		code, stdout, stderr := patchbay(t, "pause", "--control", n.control)
		if code != 0 || !strings.Contains(stdout, "paused the listener at "+n.control) {
			t.Fatalf("pause: exit %d\n%s%s", code, stdout, stderr)
		}
		testcluster.Eventually(t, 5*time.Second, "the queue paused", func() bool {
			r, _ = controlStatus(t, n.control)
			return r.Queue.Paused
		})
		before := r.LastRun.Started
		c.publish(t, map[string]string{"ctl-a": envManifest("ctl-a", "2")})
		// The change's event arrived and is held: a run is pending, and
		// none can start while paused.
		testcluster.Eventually(t, 15*time.Second, "the change queued while paused", func() bool {
			r, _ = controlStatus(t, n.control)
			return r.Queue.Pending
		})
		if !r.Queue.Paused || r.Queue.Running || !r.LastRun.Started.Equal(before) {
			t.Fatalf("paused, yet: %+v", r)
		}
		if got := n.file("/etc/ctl-a/env"); !strings.Contains(got, "VERSION='1'") {
			t.Fatalf("the file changed while paused:\n%s", got)
		}

		code, stdout, stderr = patchbay(t, "resume", "--control", n.control)
		if code != 0 || !strings.Contains(stdout, "resumed the listener at "+n.control) {
			t.Fatalf("resume: exit %d\n%s%s", code, stdout, stderr)
		}
		testcluster.Eventually(t, 15*time.Second, "the held change applied after resume", func() bool {
			r, _ = controlStatus(t, n.control)
			return strings.Contains(n.file("/etc/ctl-a/env"), "VERSION='2'") && idleAfterRun(r) && !r.Queue.Paused && r.LastRun.Started.After(before)
		})

		before = r.LastRun.Started
		okRuns = provisionsTotal(t, n.control, listener.ResultOK)
		code, stdout, stderr = patchbay(t, "provision", "--control", n.control)
		if code != 0 || !strings.Contains(stdout, "asked the listener at "+n.control+" for a provision run") {
			t.Fatalf("provision: exit %d\n%s%s", code, stdout, stderr)
		}
		testcluster.Eventually(t, 15*time.Second, "a run after patchbay provision", func() bool {
			r, _ = controlStatus(t, n.control)
			return idleAfterRun(r) && r.LastRun.Started.After(before)
		})
		if r.LastRun.Result != listener.ResultOK {
			t.Errorf("run after patchbay provision: %+v", r.LastRun)
		}
		if got := provisionsTotal(t, n.control, listener.ResultOK); got <= okRuns {
			t.Errorf("patchbay_listener_provisions_total{result=\"ok\"} = %d after the run, was %d", got, okRuns)
		}
	})

	t.Run("--converged-timeout exits 0 by itself", func(t *testing.T) {
		c.publish(t, map[string]string{"conv-a": envManifest("conv-a", "1")})
		n := newListenNode(t, c, "conv-1", false) // settings as flags this time
		port := freePort(t)
		n.write(t, fmt.Sprintf("  - service: conv-a\n    port: %d\n", port), "")
		d := startListen(t, append([]string{"--config", n.path, "--converged-timeout", "2s"}, c.flags()...)...)
		testcluster.Eventually(t, 15*time.Second, "conv-a registered and rendered", func() bool {
			return c.registered(t, "conv-a", "conv-1", port) && strings.Contains(n.file("/etc/conv-a/env"), "VERSION='1'")
		})
		d.waitLog(t, "converged: no change for the converged timeout; exiting", 15*time.Second)
		converged := time.Since(d.started)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the daemon logged that it converged and is exiting, but still runs 5 s later:\n%s", d.stderr.String())
		}
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit %d after converging, want 0", code)
		}
		t.Logf("converged %s after the start", converged.Round(time.Millisecond))
		if converged < 2*time.Second {
			t.Errorf("converged %s after the start, before its 2s timeout", converged)
		}
		if !c.gone(t, "conv-a") {
			t.Errorf("conv-a still registered after its listener converged and exited")
		}
	})

	t.Run("control address in use", func(t *testing.T) {
		c.publish(t, map[string]string{"busy-a": envManifest("busy-a", "1")})
		n := newListenNode(t, c, "busy-1", true)
		n.write(t, "  - service: busy-a\n", "")
		first := startListen(t, "--config", n.path)
		testcluster.Eventually(t, 15*time.Second, "the first listener's control endpoint", func() bool {
			code, _ := controlGet(n.control, "/healthz")
			return code == http.StatusOK
		})
		second := startListen(t, "--config", n.path) // same control address
		select {
		case <-second.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("a listener whose control address is in use still runs 5 s later:\n%s", second.stderr.String())
		}
		code, stderr := second.cmd.ProcessState.ExitCode(), second.stderr.String()
		want := "patchbay: listener: control endpoint: listen on " + n.control + ": "
		if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "set control in "+n.path+" to a free address") {
			t.Fatalf("exit %d, want an error line starting %q:\n%s", code, want, stderr)
		}
		t.Logf("control address in use: exit %d: %s", code, stderr)
		if first.exited() {
			t.Fatal("the first listener exited")
		}
	})

	t.Run("patchbay status shows each node's last run", func(t *testing.T) {
		c.publish(t, map[string]string{
			"stat-a": envManifest("stat-a", "1"),
			"stat-b": "id: stat-b\nrequires: {NOBODY_URL: \"{NOBODY_URL}\"}\ntemplates:\n  env: {source: \"builtin:env\", destination: /etc/stat-b/env}\n",
		})
		nodes := []struct {
			node, service, entry string
			result, detail       string // in patchbay status
			rendered             bool
		}{
			{"stat-ok", "stat-a", fmt.Sprintf("  - service: stat-a\n    port: %d\n", freePort(t)), listener.ResultOK, "ok (revision ", true},
			{"stat-skip", "stat-b", "  - service: stat-b\n", listener.ResultSkipped, "skipped (revision ", false},
		}
		for _, nd := range nodes { // both at once
			n := newListenNode(t, c, nd.node, true)
			n.write(t, nd.entry, "")
			startListen(t, "--config", n.path)
			testcluster.Eventually(t, 15*time.Second, nd.node+"'s first run", func() bool {
				r, ok := controlStatus(t, n.control)
				return ok && idleAfterRun(r)
			})
			r, _ := controlStatus(t, n.control)
			if r.LastRun.Result != nd.result {
				t.Errorf("%s: last run %+v, want %s", nd.node, r.LastRun, nd.result)
			}
			if got := n.file("/etc/" + nd.service + "/env"); (got != "") != nd.rendered {
				t.Errorf("%s: rendered %q, want rendered: %v", nd.node, got, nd.rendered)
			}
		}

		code, stdout, stderr := patchbay(t, "status", "--consul-addr="+c.consul.Addr)
		if code != 0 {
			t.Fatalf("status: exit %d\n%s", code, stderr)
		}
		for _, nd := range nodes {
			if !nodeRow(stdout, nd.node, nd.result) {
				t.Errorf("patchbay status: no row of %s with result %s", nd.node, nd.result)
			}
		}
		for _, words := range [][]string{
			{"stat-a: ok (revision "},
			{"stat-skip", "skipped", "stat-b skipped: NOBODY_URL unresolved"},
			{"stat-b: skipped (revision ", "NOBODY_URL unresolved"},
		} {
			if !hasLine(stdout, words...) {
				t.Errorf("patchbay status: no line with %q in order", words)
			}
		}
		if t.Failed() {
			t.Logf("patchbay status:\n%s", stdout)
		}

		code, stdout, stderr = patchbay(t, "status", "--json", "--consul-addr="+c.consul.Addr)
		var report statusReport
		if err := json.Unmarshal([]byte(stdout), &report); code != 0 || err != nil {
			t.Fatalf("status --json: exit %d, %v\n%s%s", code, err, stdout, stderr)
		}
		for _, nd := range nodes {
			var s *registry.Status
			for i := range report.Nodes {
				if report.Nodes[i].Node == nd.node {
					s = &report.Nodes[i]
				}
			}
			switch {
			case s == nil:
				t.Errorf("status --json has no node %s: %s", nd.node, stdout)
			case s.Result != nd.result || !strings.HasPrefix(s.Details[nd.service], nd.detail) || s.At.IsZero() || s.Revision == 0:
				t.Errorf("status of %s: %+v, want result %s", nd.node, *s, nd.result)
			case nd.result == listener.ResultSkipped && (!strings.Contains(s.Message, "NOBODY_URL") || !strings.Contains(s.Details[nd.service], "NOBODY_URL unresolved")):
				t.Errorf("status of %s does not name the unresolved variable: %+v", nd.node, *s)
			case nd.result == listener.ResultOK && s.Message != "":
				t.Errorf("status of %s has a message: %+v", nd.node, *s)
			}
		}
	})
}

func TestMaxProcs(t *testing.T) {
	for _, tc := range []struct {
		flag int
		env  string
		want int
		set  bool
	}{
		{flag: 1, want: 1, set: true},            // the default
		{flag: 4, want: 4, set: true},            // asked for
		{flag: 0, want: 0, set: false},           // Go's default stays
		{flag: 1, env: "8", want: 1, set: false}, // the environment chose
		{flag: 0, env: "8", want: 0, set: false},
	} {
		if got, set := maxProcs(tc.flag, tc.env); set != tc.set || (set && got != tc.want) {
			t.Errorf("maxProcs(%d, %q) = %d, %v; want %d, %v", tc.flag, tc.env, got, set, tc.want, tc.set)
		}
	}
}

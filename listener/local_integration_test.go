package listener_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// providerEnv makes the test binary a provider process: an HTTP server on
// a free loopback port, printed on its first line of output, until it is
// killed. SIGUSR1 closes its listening socket, so that health checks and
// new connections fail while open connections are still served.
const (
	providerEnv      = "PATCHBAY_TEST_LOCAL_PROVIDER"
	providerDelayEnv = "PATCHBAY_TEST_LOCAL_PROVIDER_DELAY"
)

// TestMain makes the test binary the provider process of TestLocalRouting
// when providerEnv is set, and runs the tests otherwise.
func TestMain(m *testing.M) {
	if name := os.Getenv(providerEnv); name != "" {
		runProvider(name)
		return
	}
	os.Exit(m.Run())
}

// runProvider serves until the process is killed.
func runProvider(name string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	fail := make(chan os.Signal, 1)
	signal.Notify(fail, syscall.SIGUSR1)
	go func() { <-fail; _ = ln.Close() }() // ends with the process
	delay, _ := time.ParseDuration(os.Getenv(providerDelayEnv))
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay) // the provider's work: requests are in flight when it is killed
		_, _ = fmt.Fprintf(w, "%s %s\n", name, r.URL.Path)
	})}
	_ = srv.Serve(ln)
	select {} // serves its open connections until killed
}

// provider is one provider process and its registration.
type provider struct {
	name  string
	cmd   *exec.Cmd
	port  int
	owner *registry.Owner
}

func startProvider(t *testing.T, c *cluster, name string) *provider {
	t.Helper()
	cmd := exec.Command(os.Args[0]) // TestMain serves instead of testing
	cmd.Env = append(os.Environ(), providerEnv+"="+name, providerDelayEnv+"="+localDelay.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("provider %s printed no port: %v", name, err)
	}
	p := &provider{name: name, cmd: cmd}
	if p.port, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("provider %s: %q is no port", name, line)
	}
	p.owner, err = c.reg.Register(t.Context(), registry.InstanceSpec{Federation: "default", Service: "api", Node: name, Address: "127.0.0.1", Port: p.port}, registry.WithOwnerTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.owner.Close(context.Background()) })
	if err := p.owner.WaitRegistered(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p
}

// deregister is what the provider's node does when the provider stops or
// Consul's health check of it fails.
func (p *provider) deregister(t *testing.T) {
	t.Helper()
	if err := p.owner.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// lineCount counts the lines of a file the consumer's commands append to.
func lineCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

// consumer publishes api (local_port lp) and www, which requires API_URL
// directly or via local, and starts www's listener.
func localConsumer(t *testing.T, c *cluster, via string, lp int, out string) *node {
	c.publish(fmt.Sprintf(`id: api
local_port: %d
provides: {API_URL: "http://{HOST}:{PORT}/v1"}`, lp))
	c.publish(fmt.Sprintf(`id: www
requires:
  API_URL: {key: API_URL%s}
provision: {command: ["sh", "-c", "echo run >> %s/provisions"]}
templates:
  env:
    source: builtin:env
    destination: /etc/www/env
    reload: ["sh", "-c", "echo change >> %s/env-changes"]`, via, out, out))
	c.nodeExtra = fmt.Sprintf("local_lb: {config: %s, socket: %s, check_inter: 300ms, drain: 5s}\n",
		filepath.Join(out, "lb", "haproxy.cfg"), filepath.Join(out, "lb", "admin.sock"))
	return c.startListener("www-1", "{quiet: 200ms, max_wait: 2s}", "  - service: www\n")
}

// servers returns the servers the local load balancer's report lists.
func localServers(n *node) []string {
	r := n.l.Report().LocalLB
	if r == nil || len(r.Routes) != 1 {
		return nil
	}
	return r.Routes[0].Servers
}

func hasServers(n *node, want ...*provider) func() bool {
	return func() bool {
		got := localServers(n)
		if len(got) != len(want) {
			return false
		}
		for _, p := range want {
			if !strings.Contains(strings.Join(got, " "), fmt.Sprintf("127.0.0.1:%d", p.port)) {
				return false
			}
		}
		return true
	}
}

// downInHAProxy reports whether HAProxy's own check has marked p down.
func downInHAProxy(socket string, p *provider) func() bool {
	return func() bool {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return false
		}
		defer func() { _ = conn.Close() }()
		_, _ = conn.Write([]byte("show servers state local_API_URL\n"))
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			// be_id be_name srv_id srv_name srv_addr srv_op_state ... srv_port at 18
			if len(f) > 18 && f[4] == "127.0.0.1" && f[18] == strconv.Itoa(p.port) {
				return f[5] == "0"
			}
		}
		return false
	}
}

// TestLocalRoutingBaseline is the figure before: a select-one
// consumer whose provider moves gets a new env file and a provision run.
func TestLocalRoutingBaseline(t *testing.T) {
	c := newCluster(t)
	c.startResolver()
	out := t.TempDir()
	n := localConsumer(t, c, "", freePort(t), out)
	p1, p2 := startProvider(t, c, "api-1"), startProvider(t, c, "api-2")
	env := func() string { return n.file("/etc/www/env") }
	testcluster.Eventually(t, 30*time.Second, "www renders API_URL", func() bool { return strings.Contains(env(), "API_URL=") && idle(n) })
	chosen, other := p1, p2
	if !strings.Contains(env(), strconv.Itoa(p1.port)) {
		chosen, other = p2, p1
	}
	changes, provisions := lineCount(filepath.Join(out, "env-changes")), lineCount(filepath.Join(out, "provisions"))
	chosen.deregister(t)
	testcluster.Eventually(t, 30*time.Second, "www follows the provider", func() bool { return strings.Contains(env(), strconv.Itoa(other.port)) && idle(n) })
	dc, dp := lineCount(filepath.Join(out, "env-changes"))-changes, lineCount(filepath.Join(out, "provisions"))-provisions
	t.Logf("direct select one, one provider move: %d env file changes, %d consumer provisions", dc, dp)
	if dc < 1 || dp < 1 {
		t.Fatalf("env changes %d, provisions %d: a direct consumer should see the move", dc, dp)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestLocalRouting is the "done when": load through the
// consumer's local port while providers are added, removed, killed with
// kill -9 and failing their health check.
func TestLocalRouting(t *testing.T) {
	testcluster.RequirePrograms(t, "haproxy")
	c := newCluster(t)
	c.startResolver()
	out := t.TempDir()
	lp := freePort(t)
	n := localConsumer(t, c, ", via: local", lp, out)
	socket := filepath.Join(out, "lb", "admin.sock")
	ps := []*provider{startProvider(t, c, "api-a"), startProvider(t, c, "api-b")}
	testcluster.Eventually(t, 30*time.Second, "the local LB serves two providers", hasServers(n, ps...))
	testcluster.Eventually(t, 30*time.Second, "www renders API_URL", func() bool {
		return strings.Contains(n.file("/etc/www/env"), fmt.Sprintf("API_URL='http://127.0.0.1:%d/v1'", lp)) && idle(n)
	})
	envBefore := n.file("/etc/www/env")
	changes, provisions := lineCount(filepath.Join(out, "env-changes")), lineCount(filepath.Join(out, "provisions"))
	lb0 := *n.l.Report().LocalLB

	load := startLocalLoad(fmt.Sprintf("http://127.0.0.1:%d/v1", lp), *localRate)
	var windows [][2]time.Time // from each kill -9 until HAProxy marked the provider down
	for i := range *localCycles {
		var w [2]time.Time
		ps, w = churnCycle(t, c, n, socket, ps, i)
		windows = append(windows, w)
	}
	res := load.stop()
	testcluster.Eventually(t, 10*time.Second, "www idle", func() bool { return idle(n) })

	lb1 := *n.l.Report().LocalLB
	if last := n.l.Report().LastRun; last == nil || last.LocalLB == nil || len(last.LocalLB.Routes) != 1 || last.LocalLB.Routes[0].Port != lp {
		t.Errorf("the last run's report (status) lacks the local route on port %d: %+v", lp, last)
	}
	inFlight, other := res.failuresIn(windows)
	fig := localFigures{
		requests: res.total, failed: inFlight + other, inFlightKilled: inFlight,
		envChanges:  lineCount(filepath.Join(out, "env-changes")) - changes,
		provisions:  lineCount(filepath.Join(out, "provisions")) - provisions,
		reloads:     lb1.Reloads - lb0.Reloads,
		runtime:     lb1.RuntimeChanges - lb0.RuntimeChanges,
		starts:      lb1.Starts - lb0.Starts,
		sameEnvFile: n.file("/etc/www/env") == envBefore,
		retried:     haproxyStat(t, socket, "local_API_URL", "BACKEND", "wretr"),
	}
	t.Logf("figures:\n%s", fig)
	for _, e := range res.errors {
		t.Logf("failed request: %s", e)
	}
	switch {
	case other != 0:
		t.Errorf("%d failed requests outside the window of the kill -9", other)
	case inFlight > localInFlightBound*uint64(*localCycles):
		t.Errorf("%d failed requests in flight to the killed providers; want at most %d per kill", inFlight, localInFlightBound)
	case fig.envChanges != 0 || !fig.sameEnvFile || fig.provisions != 0:
		t.Errorf("the consumer changed: %d env changes, %d provisions", fig.envChanges, fig.provisions)
	case fig.reloads != 0 || fig.starts != 0:
		t.Errorf("HAProxy reloaded %d times, started %d times for provider changes; want 0", fig.reloads, fig.starts)
	case fig.runtime < 5*uint64(*localCycles):
		t.Errorf("%d runtime API changes; want one per provider change (5 a cycle or more)", fig.runtime)
	case res.total < 100:
		t.Errorf("only %d requests sent", res.total)
	}
	newFrontendReloads(t, c, n, out)
}

// newFrontendReloads: a second key served locally is a new frontend,
// which the master reloads for, once, and then serves.
func newFrontendReloads(t *testing.T, c *cluster, n *node, out string) {
	before := n.l.Report().LocalLB.Reloads
	lp := freePort(t)
	c.publish(fmt.Sprintf("id: cache\nlocal_port: %d\nprovides: {CACHE_ADDR: \"{HOST}:{PORT}\"}", lp))
	c.publish(fmt.Sprintf(`id: www
requires:
  API_URL: {key: API_URL, via: local}
  CACHE_ADDR: {key: CACHE_ADDR, via: local}
provision: {command: ["sh", "-c", "echo run >> %s/provisions"]}
templates:
  env: {source: "builtin:env", destination: /etc/www/env}`, out))
	o, err := c.reg.Register(t.Context(), registry.InstanceSpec{Federation: "default", Service: "cache", Node: "cache-1", Address: "127.0.0.1", Port: testcluster.TCPBackend(t)}, registry.WithOwnerTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	testcluster.Eventually(t, 30*time.Second, "the cache frontend served after one reload", func() bool {
		r := n.l.Report().LocalLB
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lp))
		if err == nil {
			_ = conn.Close()
		}
		return r != nil && len(r.Routes) == 2 && err == nil && strings.Contains(n.file("/etc/www/env"), fmt.Sprintf("CACHE_ADDR='127.0.0.1:%d'", lp))
	})
	if r := n.l.Report().LocalLB; r.Reloads != before+1 {
		t.Errorf("%d reloads for one new frontend; want 1", r.Reloads-before)
	}
}

var (
	localCycles = flag.Int("local.cycles", 1, "churn cycles of TestLocalRouting (6 provider changes each)")
	localRate   = flag.Int("local.rate", 200, "requests a second through the local port in TestLocalRouting")
	localDelay  = flag.Duration("local.delay", 20*time.Millisecond, "how long a provider of TestLocalRouting takes to answer, so that requests are in flight when one is killed")
)

const localRequestTimeout = 10 * time.Second

// localInFlightBound bounds the requests lost to a kill -9: at most those
// on the killed provider's connections at that instant, which HAProxy's
// retry-on sends elsewhere when nothing was answered yet.
const localInFlightBound = 5

type localFigures struct {
	requests, failed, inFlightKilled uint64
	envChanges, provisions           int
	reloads, runtime, starts         uint64
	retried                          string // requests HAProxy retried on another server
	sameEnvFile                      bool
}

func (f localFigures) String() string {
	return fmt.Sprintf("| requests | failed | of which in flight to a killed provider | retried by HAProxy | env file changes | consumer provisions | HAProxy reloads | HAProxy starts | runtime API changes |\n| %d | %d | %d | %s | %d | %d | %d | %d | %d |",
		f.requests, f.failed, f.inFlightKilled, f.retried, f.envChanges, f.provisions, f.reloads, f.starts, f.runtime)
}

// localLoad is vegeta sending a steady rate through the local port.
type localLoad struct {
	attacker *vegeta.Attacker
	done     chan localResult
}

type localResult struct {
	total  uint64
	failed []*vegeta.Result
	errors []string
}

func startLocalLoad(url string, rate int) *localLoad {
	a := vegeta.NewAttacker(vegeta.Timeout(localRequestTimeout))
	l := &localLoad{attacker: a, done: make(chan localResult, 1)}
	target := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	go func() { // ends when stop stops the attack
		var r localResult
		for res := range a.Attack(target, vegeta.Rate{Freq: rate, Per: time.Second}, 5*time.Minute, "local") {
			r.total++
			if res.Code != http.StatusOK || res.Error != "" || !strings.HasSuffix(strings.TrimSpace(string(res.Body)), "/v1") {
				r.failed = append(r.failed, res)
				r.errors = append(r.errors, fmt.Sprintf("%s: %d %s", res.Timestamp.Format(time.RFC3339Nano), res.Code, res.Error))
			}
		}
		l.done <- r
	}()
	return l
}

func (l *localLoad) stop() localResult {
	l.attacker.Stop()
	return <-l.done
}

// failuresIn splits the failures into those sent while a killed
// provider was in HAProxy's rotation (from a request timeout before the
// kill until HAProxy marked it down) and the others.
func (r localResult) failuresIn(windows [][2]time.Time) (inWindow, other uint64) {
	for _, f := range r.failed {
		in := false
		for _, w := range windows {
			in = in || !f.Timestamp.Before(w[0].Add(-localRequestTimeout)) && !f.Timestamp.After(w[1])
		}
		if in {
			inWindow++
		} else {
			other++
		}
	}
	return inWindow, other
}

// churnCycle changes the providers every way the issue names: one added,
// one removed (deregistered, drained, then stopped), one killed with
// kill -9, one added, one failing its health check, one added. It takes
// and returns the live providers (at least two) and the kill's window.
func churnCycle(t *testing.T, c *cluster, n *node, socket string, ps []*provider, cycle int) ([]*provider, [2]time.Time) {
	step := func(what string, cond func() bool) {
		testcluster.Eventually(t, 30*time.Second, fmt.Sprintf("cycle %d: %s", cycle, what), cond)
	}
	name := func(i int) string { return fmt.Sprintf("api-%d-%d", cycle, i) }
	ps = append(ps, startProvider(t, c, name(1)))
	step("a provider added", hasServers(n, ps...))
	ps[0].deregister(t)
	ps = ps[1:]
	step("a provider removed", hasServers(n, ps...))
	_ = ps[0].cmd.Process.Signal(syscall.SIGTERM)
	var w [2]time.Time
	w[0] = time.Now()
	_ = ps[0].cmd.Process.Kill() // kill -9
	step("HAProxy marks the killed provider down", downInHAProxy(socket, ps[0]))
	w[1] = time.Now()
	ps[0].deregister(t)
	ps = append(ps[1:], startProvider(t, c, name(2)))
	step("the killed one gone, another added", hasServers(n, ps...))
	_ = ps[0].cmd.Process.Signal(syscall.SIGUSR1) // its health check fails
	step("HAProxy marks the failing provider down", downInHAProxy(socket, ps[0]))
	ps[0].deregister(t)
	ps = append(ps[1:], startProvider(t, c, name(3)))
	step("the failing one gone, another added", hasServers(n, ps...))
	return ps, w
}

// haproxyStat reads one field of one row of "show stat".
func haproxyStat(t *testing.T, socket, proxy, server, field string) string {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = conn.Write([]byte("show stat\n"))
	sc := bufio.NewScanner(conn)
	var header []string
	for sc.Scan() {
		f := strings.Split(strings.TrimPrefix(sc.Text(), "# "), ",")
		if header == nil {
			header = f
			continue
		}
		if len(f) > 1 && f[0] == proxy && f[1] == server {
			for i, h := range header {
				if h == field && i < len(f) {
					return f[i]
				}
			}
		}
	}
	t.Fatalf("show stat has no %s of %s/%s", field, proxy, server)
	return ""
}

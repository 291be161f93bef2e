package listener_test

import (
	"bufio"
	"context"
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

	"github.com/patchbay/patchbay/internal/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// providerEnv makes the test binary a provider process: an HTTP server on
// a free loopback port, printed on its first line of output, until it is
// killed. SIGUSR1 closes its listening socket, so that health checks and
// new connections fail while open connections are still served.
const providerEnv = "PATCHBAY_TEST_LOCAL_PROVIDER"

// TestLocalProviderProcess is not a test: it is the provider process of
// TestLocalRouting, started from the test binary.
func TestLocalProviderProcess(t *testing.T) {
	name := os.Getenv(providerEnv)
	if name == "" {
		t.Skip("the provider process of TestLocalRouting; runs only when started by it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	fail := make(chan os.Signal, 1)
	signal.Notify(fail, syscall.SIGUSR1)
	go func() { <-fail; _ = ln.Close() }() // ends with the process
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestLocalProviderProcess$")
	cmd.Env = append(os.Environ(), providerEnv+"="+name)
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
	ps := []*provider{startProvider(t, c, "api-1"), startProvider(t, c, "api-2")}
	testcluster.Eventually(t, 30*time.Second, "the local LB serves two providers", hasServers(n, ps...))
	testcluster.Eventually(t, 30*time.Second, "www renders API_URL", func() bool {
		return strings.Contains(n.file("/etc/www/env"), fmt.Sprintf("API_URL='http://127.0.0.1:%d/v1'", lp)) && idle(n)
	})
	envBefore := n.file("/etc/www/env")
	changes, provisions := lineCount(filepath.Join(out, "env-changes")), lineCount(filepath.Join(out, "provisions"))
	lb0 := *n.l.Report().LocalLB

	load := startLocalLoad(fmt.Sprintf("http://127.0.0.1:%d/v1", lp), 100)
	step := func(what string, cond func() bool) { testcluster.Eventually(t, 30*time.Second, what, cond) }
	ps = append(ps, startProvider(t, c, "api-3"))
	step("api-3 added", hasServers(n, ps...))
	ps[0].deregister(t) // removed: drained, then stopped
	step("api-1 removed", hasServers(n, ps[1], ps[2]))
	_ = ps[0].cmd.Process.Signal(syscall.SIGTERM)
	killed := time.Now()
	_ = ps[1].cmd.Process.Kill() // kill -9
	step("HAProxy marks killed api-2 down", downInHAProxy(socket, ps[1]))
	downAt := time.Now()
	ps[1].deregister(t)
	ps = append(ps, startProvider(t, c, "api-4"))
	step("api-2 gone, api-4 added", hasServers(n, ps[2], ps[3]))
	_ = ps[2].cmd.Process.Signal(syscall.SIGUSR1) // its health check fails
	step("HAProxy marks failing api-3 down", downInHAProxy(socket, ps[2]))
	ps[2].deregister(t)
	ps = append(ps, startProvider(t, c, "api-5"))
	step("api-3 gone, api-5 added", hasServers(n, ps[3], ps[4]))
	res := load.stop()
	testcluster.Eventually(t, 10*time.Second, "www idle", func() bool { return idle(n) })

	lb1 := *n.l.Report().LocalLB
	inFlight, other := res.failuresBetween(killed, downAt)
	fig := localFigures{
		requests: res.total, failed: inFlight + other, inFlightKilled: inFlight,
		envChanges:  lineCount(filepath.Join(out, "env-changes")) - changes,
		provisions:  lineCount(filepath.Join(out, "provisions")) - provisions,
		reloads:     lb1.Reloads - lb0.Reloads,
		runtime:     lb1.RuntimeChanges - lb0.RuntimeChanges,
		starts:      lb1.Starts - lb0.Starts,
		sameEnvFile: n.file("/etc/www/env") == envBefore,
	}
	t.Logf("figures:\n%s", fig)
	for _, e := range res.errors {
		t.Logf("failed request: %s", e)
	}
	switch {
	case other != 0:
		t.Errorf("%d failed requests outside the window of the kill -9", other)
	case inFlight > localInFlightBound:
		t.Errorf("%d failed requests in flight to the killed provider; want at most %d", inFlight, localInFlightBound)
	case fig.envChanges != 0 || !fig.sameEnvFile || fig.provisions != 0:
		t.Errorf("the consumer changed: %d env changes, %d provisions", fig.envChanges, fig.provisions)
	case fig.reloads != 0 || fig.starts != 0:
		t.Errorf("HAProxy reloaded %d times, started %d times for provider changes; want 0", fig.reloads, fig.starts)
	case fig.runtime < 5:
		t.Errorf("%d runtime API changes; want one per provider change (5 or more)", fig.runtime)
	case res.total < 100:
		t.Errorf("only %d requests sent", res.total)
	}
}

// localInFlightBound bounds the requests lost to a kill -9: at most those
// on the killed provider's connections at that instant, which HAProxy's
// retry-on sends elsewhere when nothing was answered yet.
const localInFlightBound = 5

type localFigures struct {
	requests, failed, inFlightKilled uint64
	envChanges, provisions           int
	reloads, runtime, starts         uint64
	sameEnvFile                      bool
}

func (f localFigures) String() string {
	return fmt.Sprintf("| requests | failed | of which in flight to the killed provider | env file changes | consumer provisions | HAProxy reloads | HAProxy starts | runtime API changes |\n| %d | %d | %d | %d | %d | %d | %d | %d |",
		f.requests, f.failed, f.inFlightKilled, f.envChanges, f.provisions, f.reloads, f.starts, f.runtime)
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
	a := vegeta.NewAttacker(vegeta.Timeout(10 * time.Second))
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

// failuresBetween splits the failures into those sent while a killed
// provider was still in HAProxy's rotation and the others.
func (r localResult) failuresBetween(from, to time.Time) (inWindow, other uint64) {
	for _, f := range r.failed {
		if !f.Timestamp.Before(from.Add(-time.Second)) && !f.Timestamp.After(to) {
			inWindow++
		} else {
			other++
		}
	}
	return inWindow, other
}

var _ = listener.LocalReport{}

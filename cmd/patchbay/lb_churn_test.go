package main

import (
	"context"
	goflag "flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// lbChurn is the number of backend additions and removals of
// TestListenLBChurn. docs/templates.md's figures are of -lb.churn=200; the
// default keeps the test well under a minute.
var (
	lbChurn     = goflag.Int("lb.churn", 40, "backend additions and removals in TestListenLBChurn")
	lbChurnPace = goflag.Duration("lb.churn-pace", 300*time.Millisecond, "time between two backend changes in TestListenLBChurn")
)

// TestListenLBChurn sends steady traffic through nginx and HAProxy, both
// driven by `patchbay listen`, while backends are added and removed: no
// request may fail; HAProxy (runtime_api) must not reload at all; nginx
// reloads once per run that changed its file.
func TestListenLBChurn(t *testing.T) {
	testcluster.RequirePrograms(t, "nginx", "haproxy")
	c := startListenCluster(t)
	c.publish(t, map[string]string{"web": publicWeb(true)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Backends stay up for the whole test: what is measured is the load
	// balancers following the registry, not backends dying.
	var ports []int
	for i := range 8 {
		p, _ := strconv.Atoi(namedBackend(t, fmt.Sprintf("web-%d", i)))
		ports = append(ports, p)
	}
	instances := 0
	register := func() *registry.Owner {
		instances++
		o, err := c.reg.Register(ctx, registry.InstanceSpec{Federation: "default", Service: "web", Node: fmt.Sprintf("n%d", instances),
			Address: "127.0.0.1", Port: ports[instances%len(ports)]}, registry.WithOwnerTTL(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Close(context.Background()) })
		if err := o.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		return o
	}
	for range 2 { // the route never empties
		register()
	}

	l := startLBNode(t, c, fmt.Sprintf("runtime_api: \"true\", stats_socket: %q", filepath.Join(t.TempDir(), "admin.sock")))
	testcluster.Eventually(t, 20*time.Second, "two backends in both configs", func() bool { return l.both("web_n1_") && l.both("web_n2_") })
	l.startServers(t)
	ha := &haproxyInfo{socket: statsSocket(t, l.haCfg)}
	testcluster.Eventually(t, 10*time.Second, "both LBs route web", func() bool { return l.answers("web", http.StatusOK, "") })
	pidBefore := ha.pid(t)
	installsBefore, reloadsBefore := l.nginxInstalls(), l.reloads("nginx")

	load := startLoad(l.lbs, 100)
	var extra []*registry.Owner
	var lastChange string // the config name of the instance last added or removed
	var lastAdded bool
	// The churn's pace, not a wait for anything: about one change per run
	// of the listener, whose queue would otherwise merge them.
	tick := time.NewTicker(*lbChurnPace)
	defer tick.Stop()
	for i := range *lbChurn {
		<-tick.C
		if i%2 == 0 || len(extra) == 0 {
			extra = append(extra, register())
			lastChange, lastAdded = configName(extra[len(extra)-1]), true
			continue
		}
		if err := extra[0].Close(ctx); err != nil {
			t.Fatal(err)
		}
		lastChange, lastAdded = configName(extra[0]), false
		extra = extra[1:]
	}
	// Converged: the last change applied, and every backend still
	// registered in both configs.
	testcluster.Eventually(t, 30*time.Second, "the last change in both configs", func() bool {
		s, ok := l.lbRun(t)
		if !ok || s.Result != "ok" || l.hasServer(lastChange) != lastAdded {
			return false
		}
		for _, o := range extra {
			if !l.hasServer(configName(o)) {
				return false
			}
		}
		return true
	})
	results := load.stop()

	runtime, fallback := metricValue(t, l.n.control, `patchbay_listener_haproxy_runtime_total{applied="runtime"}`), metricValue(t, l.n.control, `patchbay_listener_haproxy_runtime_total{applied="fallback"}`)
	installs := l.nginxInstalls() - installsBefore
	nginxReloads := l.reloads("nginx") - reloadsBefore
	t.Logf("churn of %d additions and removals: %s; HAProxy: %d reloads, %d runtime applies, %d fallbacks, worker pid %d → %d; nginx: %d reloads for %d installs",
		*lbChurn, results, l.reloads("haproxy"), runtime, fallback, pidBefore, ha.pid(t), nginxReloads, installs)
	for name, r := range results {
		if r.requests < 100 || r.failed > 0 {
			t.Errorf("%s: %d of %d requests failed: %v", name, r.failed, r.requests, r.errors)
		}
	}
	if l.reloads("haproxy") != 0 || fallback != 0 || runtime == 0 || ha.pid(t) != pidBefore {
		t.Errorf("HAProxy: %d reloads, %d fallbacks, %d runtime applies, worker %d → %d; want no reload", l.reloads("haproxy"), fallback, runtime, pidBefore, ha.pid(t))
	}
	if n := nginxReloads; n == 0 || n != installs {
		t.Errorf("nginx: %d reloads for %d installs of its file; want one per install", n, installs)
	}
	assertRunning(t, "nginx", l.pids["nginx"])
	assertRunning(t, "haproxy", l.pids["haproxy"])
}

// configName is an instance's name in the builtin load balancers' configs.
func configName(o *registry.Owner) string {
	return strings.NewReplacer("@", "_", ":", "_", "-", "_", ".", "_").Replace(o.ID())
}

// hasServer reports whether both configs have the upstream named name, as
// the builtin templates write it; false when neither has, or they differ.
func (l *lbNode) hasServer(name string) bool {
	ng, _ := os.ReadFile(l.nginxConf)
	ha, _ := os.ReadFile(l.haCfg)
	inNginx, inHAProxy := strings.Contains(string(ng), "; # "+name+"\n"), strings.Contains(string(ha), "server "+name+" ")
	return inNginx && inHAProxy
}

// reloads counts the reload commands run for server since it started.
func (l *lbNode) reloads(server string) int {
	out, _ := os.ReadFile(filepath.Join(l.dir, server+".reloads"))
	return strings.Count(string(out), "\n")
}

// nginxInstalls counts the listener's installs of nginx.conf.
func (l *lbNode) nginxInstalls() int {
	return len(regexp.MustCompile(`(?m)msg=installed .*template=nginx`).FindAllString(l.d.stderr.String(), -1))
}

// haproxyCommand runs one command on HAProxy's stats socket.
func haproxyCommand(t *testing.T, socket, command string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// statsSocket reads the stats socket from an installed haproxy.cfg.
func statsSocket(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`stats socket (\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no stats socket in %s", cfg)
	}
	return m[1]
}

// haproxyInfo reads HAProxy's own view of itself over its stats socket.
type haproxyInfo struct{ socket string }

// pid is the worker's PID: a reload starts a new worker.
func (h *haproxyInfo) pid(t *testing.T) int {
	t.Helper()
	out := haproxyCommand(t, h.socket, "show info")
	m := regexp.MustCompile(`(?m)^Pid: (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("show info: %s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// metricValue reads one sample of the daemon's /metrics; -1 when absent.
func metricValue(t *testing.T, addr, sample string) int {
	t.Helper()
	_, body := controlGet(addr, "/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// loadResult is one load balancer's share of the traffic.
type loadResult struct {
	requests, failed int
	errors           map[string]int
}

type loadResults map[string]*loadResult

func (r loadResults) String() string {
	var parts []string
	for _, name := range []string{"nginx", "haproxy"} {
		if x := r[name]; x != nil {
			parts = append(parts, fmt.Sprintf("%s %d requests, %d failed", name, x.requests, x.failed))
		}
	}
	return strings.Join(parts, "; ")
}

// load is vegeta sending a steady rate of requests for host "web" to each
// load balancer, every request on a new connection.
type load struct {
	attackers []*vegeta.Attacker
	wg        sync.WaitGroup
	mu        sync.Mutex
	results   loadResults
}

func startLoad(lbs map[string]string, perSecond int) *load {
	ld := &load{results: loadResults{}}
	for name, addr := range lbs {
		a := vegeta.NewAttacker(vegeta.KeepAlive(false), vegeta.Timeout(5*time.Second))
		ld.attackers = append(ld.attackers, a)
		r := &loadResult{errors: map[string]int{}}
		ld.results[name] = r
		target := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: "http://" + addr + "/", Header: http.Header{"Host": {"web"}}})
		ld.wg.Go(func() {
			for res := range a.Attack(target, vegeta.Rate{Freq: perSecond, Per: time.Second}, 0, name) {
				ld.mu.Lock()
				r.requests++
				if res.Code != http.StatusOK || res.Error != "" {
					r.failed++
					r.errors[fmt.Sprintf("%d %s", res.Code, res.Error)]++
				}
				ld.mu.Unlock()
			}
		})
	}
	return ld
}

// stop ends the attacks and returns the results.
func (ld *load) stop() loadResults {
	for _, a := range ld.attackers {
		a.Stop()
	}
	ld.wg.Wait()
	return ld.results
}

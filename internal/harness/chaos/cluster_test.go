package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// machine is one namespace of the topology.
type machine struct {
	name string
	ip   string
}

// host is a listener host: its own Consul client agent and a listener
// whose files are rendered under root.
type host struct {
	machine
	agent    *proc
	listener *proc
	dir      string // config, state, logs of runs and checks
	root     string // the listener's root: rendered files land below it
}

func (h *host) control() string { return h.ip + ":7676" }
func (h *host) file() string    { return filepath.Join(h.root, "etc", "app", "state") }

// resolverHost runs a Consul client agent and a `patchbay resolver`.
type resolverHost struct {
	machine
	agent    *proc
	resolver *proc
}

// server is a Consul server; a killed one restarts from its data dir.
type server struct {
	machine
	agent *proc
}

type cluster struct {
	t       *testing.T
	repo    string // repository root: bin/ holds the programs
	dir     string // data and configuration of this run
	logs    string
	servers []*server
	nats    []*machine
	natsPr  []*proc
	hosts   []*host
	res     []*resolverHost
	all     []*proc
	opts    options
	marks   *marks
	samples *sampler
}

func (c *cluster) bin(name string) string { return filepath.Join(c.repo, "bin", name) }

func (c *cluster) natsURL() string {
	var urls []string
	for _, n := range c.nats {
		urls = append(urls, "nats://"+n.ip+":4222")
	}
	return strings.Join(urls, ",")
}

func (c *cluster) serverIPs() []string {
	var ips []string
	for _, s := range c.servers {
		ips = append(ips, s.ip)
	}
	return ips
}

// newCluster lays out the machines: servers .11-.13, NATS .21-.22, listener
// hosts .31-.33, resolvers .41-.42.
func newCluster(t *testing.T, repo string, opts options) *cluster {
	c := &cluster{t: t, repo: repo, dir: t.TempDir(), logs: filepath.Join(repo, "bin", "chaos-logs"), opts: opts}
	for i := 1; i <= 3; i++ {
		c.servers = append(c.servers, &server{machine: machine{fmt.Sprintf("srv%d", i), fmt.Sprintf("%s.1%d", subnet, i)}})
		c.hosts = append(c.hosts, &host{machine: machine{fmt.Sprintf("host%d", i), fmt.Sprintf("%s.3%d", subnet, i)}})
	}
	for i := 1; i <= 2; i++ {
		c.nats = append(c.nats, &machine{fmt.Sprintf("nats%d", i), fmt.Sprintf("%s.2%d", subnet, i)})
		c.res = append(c.res, &resolverHost{machine: machine{fmt.Sprintf("res%d", i), fmt.Sprintf("%s.4%d", subnet, i)}})
	}
	c.marks = newMarks()
	return c
}

func (c *cluster) machines() []machine {
	var ms []machine
	for _, s := range c.servers {
		ms = append(ms, s.machine)
	}
	for _, n := range c.nats {
		ms = append(ms, *n)
	}
	for _, h := range c.hosts {
		ms = append(ms, h.machine)
	}
	for _, r := range c.res {
		ms = append(ms, r.machine)
	}
	return ms
}

func (c *cluster) newProc(name, machine string, argv ...string) *proc {
	p := newProc(name, machine, filepath.Join(c.logs, name+".log"), argv...)
	c.all = append(c.all, p)
	return p
}

// up builds the network and starts everything, removing it all when the
// test ends, failure or not.
func (c *cluster) up(ctx context.Context) {
	t := c.t
	if err := checkSubnetFree(); err != nil {
		t.Fatal(err)
	}
	if err := removeNetwork(); err != nil { // a crashed earlier run's
		t.Fatal(err)
	}
	_ = os.RemoveAll(c.logs)
	if err := os.MkdirAll(c.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.down)
	if err := addBridge(); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.machines() {
		if err := addNamespace(m.name, m.ip); err != nil {
			t.Fatal(err)
		}
	}
	c.startConsul(ctx)
	c.startNATS(ctx)
	c.publish(ctx)
	for _, r := range c.res {
		r.resolver = c.newProc(r.name+"-resolver", r.name, c.bin("patchbay"), "resolver", "--name", r.name,
			"--consul-addr", "127.0.0.1:8500", "--nats-url", c.natsURL())
		c.must(r.resolver.start())
	}
	for _, h := range c.hosts {
		c.must(c.startListener(h, c.opts.listenerConfig()))
	}
	c.samples = startSampler(c)
	c.must(c.waitSettled(ctx, 2*time.Minute))
}

// waitSettled waits until every instance is registered and every file
// equals what the stored binding implies.
func (c *cluster) waitSettled(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		if err := c.allRegistered(ctx); err != nil {
			return err
		}
		return c.filesMatch()
	})
}

func (c *cluster) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// down stops every program (SIGTERM, then SIGKILL), then removes the
// namespaces and the bridge.
func (c *cluster) down() {
	if c.samples != nil {
		c.samples.stop()
	}
	// patchbay first, so listeners deregister through live agents.
	var first, then []*proc
	for _, p := range c.all {
		if strings.HasSuffix(p.name, "-listener") || strings.HasSuffix(p.name, "-resolver") {
			first = append(first, p)
		} else {
			then = append(then, p)
		}
	}
	c.stopAll(first)
	c.stopAll(then)
	if err := removeNetwork(); err != nil {
		c.t.Errorf("clean up: %v", err)
	}
}

func (c *cluster) stopAll(procs []*proc) {
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { // owned by stopAll, which waits below
			defer wg.Done()
			if err := p.stop(10 * time.Second); err != nil {
				c.t.Logf("stop %s: %v", p.name, err)
			}
		}()
	}
	wg.Wait()
}

// consulConfig is an agent's configuration: servers bootstrap together and
// keep their Raft data across a kill; clients join the servers and leave on
// SIGTERM.
func (c *cluster) consulConfig(m machine, isServer bool) string {
	join := `["` + strings.Join(c.serverIPs(), `","`) + `"]`
	cfg := fmt.Sprintf(`node_name = %q
datacenter = "chaos"
data_dir = %q
bind_addr = %q
client_addr = "127.0.0.1 %s"
retry_join = %s
retry_interval = "1s"
log_level = "warn"
disable_update_check = true
performance { raft_multiplier = 1 }
ports { dns = -1 }
`, m.name, filepath.Join(c.dir, m.name, "consul"), m.ip, m.ip, join)
	if isServer {
		cfg += `server = true
bootstrap_expect = 3
leave_on_terminate = false
skip_leave_on_interrupt = true
autopilot { cleanup_dead_servers = false }
`
	} else {
		cfg += "leave_on_terminate = true\n"
	}
	return cfg
}

func (c *cluster) agentProc(m machine, isServer bool) *proc {
	dir := filepath.Join(c.dir, m.name)
	c.must(os.MkdirAll(filepath.Join(dir, "consul"), 0o755))
	cfg := filepath.Join(dir, "consul.hcl")
	c.must(os.WriteFile(cfg, []byte(c.consulConfig(m, isServer)), 0o644))
	return c.newProc(m.name+"-consul", m.name, c.bin("consul"), "agent", "-config-file", cfg)
}

func (c *cluster) startConsul(ctx context.Context) {
	for _, s := range c.servers {
		s.agent = c.agentProc(s.machine, true)
		c.must(s.agent.start())
	}
	for _, h := range c.hosts {
		h.agent = c.agentProc(h.machine, false)
		c.must(h.agent.start())
	}
	for _, r := range c.res {
		r.agent = c.agentProc(r.machine, false)
		c.must(r.agent.start())
	}
	c.must(c.waitConsul(ctx, 2*time.Minute))
}

// waitConsul waits until a leader is elected and every agent is an alive
// member.
func (c *cluster) waitConsul(ctx context.Context, timeout time.Duration) error {
	want := len(c.servers) + len(c.hosts) + len(c.res)
	return poll(ctx, timeout, func() error {
		cl, err := c.consul()
		if err != nil {
			return err
		}
		if l, err := cl.Status().Leader(); err != nil || l == "" {
			return fmt.Errorf("no consul leader yet (%v)", err)
		}
		members, err := cl.Agent().Members(false)
		if err != nil {
			return err
		}
		alive := 0
		for _, m := range members {
			if m.Status == 1 {
				alive++
			}
		}
		if alive != want {
			return fmt.Errorf("%d of %d consul agents alive", alive, want)
		}
		return nil
	})
}

// consulAddr is the HTTP API of the first running server; the suite talks
// to the servers directly, as an operator's tools would.
func (c *cluster) consulAddr() (string, error) {
	for _, s := range c.servers {
		if s.agent.running() {
			return s.ip + ":8500", nil
		}
	}
	return "", errors.New("chaos: no consul server running")
}

func (c *cluster) consul() (*api.Client, error) {
	addr, err := c.consulAddr()
	if err != nil {
		return nil, err
	}
	return api.NewClient(&api.Config{Address: addr, HttpClient: &http.Client{Timeout: 3 * time.Second}})
}

func (c *cluster) startNATS(ctx context.Context) {
	for i, n := range c.nats {
		other := c.nats[1-i]
		p := c.newProc(n.name+"-nats", n.name, c.bin("nats-server"), "-a", n.ip, "-p", "4222",
			"-n", n.name, "--cluster_name", "pbchaos", "-cluster", "nats://"+n.ip+":6222",
			"-routes", "nats://"+other.ip+":6222")
		c.natsPr = append(c.natsPr, p)
		c.must(p.start())
	}
	c.must(c.waitNATS(ctx, 30*time.Second))
}

func (c *cluster) waitNATS(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		for _, n := range c.nats {
			conn, err := net.DialTimeout("tcp", n.ip+":4222", time.Second)
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	})
}

// poll calls fn until it succeeds, giving up after timeout with its last
// error.
func poll(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

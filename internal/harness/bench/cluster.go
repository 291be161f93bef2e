package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/patchbay/patchbay/internal/events"
)

// freePort asks the kernel for a free TCP port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer func() { _ = l.Close() }() // only held to learn a free port
	return l.Addr().(*net.TCPAddr).Port, nil
}

// agentNode is the bench agent's Consul node name. It serves every
// simulated node, so the bench's registry clients name it shared
// (registry.WithSharedAgentNodes): its sessions hold any node's instances.
const agentNode = "bench"

// startConsul runs `consul agent -dev` on free loopback ports and waits
// for it to lead. Its per-client connection limit is raised: every fleet
// reaches it from 127.0.0.1, through the proxies, and consul-template alone
// holds one long poll per process; the fan-out's 10,000 watchers one each.
func startConsul(ctx context.Context, bin, dir string) (*proc, string, error) {
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, "", err
		}
		ports[i] = p
	}
	hcl := fmt.Sprintf("ports { http = %d, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = -1, server = %d }\n"+
		"limits { http_max_conns_per_client = %d }\n", ports[0], ports[1], ports[2], maxConnsPerClient())
	p, err := startProc("consul", dir, filepath.Join(dir, "consul.log"), nil,
		bin, "agent", "-dev", "-node", agentNode, "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "warn", "-hcl", hcl)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	err = poll(ctx, 30*time.Second, 50*time.Millisecond, func() bool {
		if ok, _ := p.exited(); ok {
			return true
		}
		return consulLeads(addr)
	})
	if ok, werr := p.exited(); ok {
		return nil, "", fmt.Errorf("bench: consul exited (%w); see %s", werr, filepath.Join(dir, "consul.log"))
	}
	if err != nil {
		p.stop(5 * time.Second)
		return nil, "", fmt.Errorf("bench: consul at %s has no leader: %w", addr, err)
	}
	return p, addr, nil
}

// maxConnsPerClient is as many HTTP connections per client address as
// Consul's descriptors allow (it wants 20 to spare), for the fan-out's
// watchers: Consul's own default is 200.
func maxConnsPerClient() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur < 10100 {
		return 10000
	}
	return min(l.Cur-100, 1<<16)
}

func consulLeads(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var b [64]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b[:n]), ":")
}

// startNATS embeds a NATS server on a free loopback port.
func startNATS() (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("bench: nats server: %w", err)
	}
	go ns.Start() // returns at once; Shutdown ends the server's goroutines
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("bench: nats server not ready within 10s")
	}
	return ns, nil
}

// The services of the bench: providers whose instances come and go, and
// consumers that render every provider's address into one file.
const (
	providerManifest = `id: provider
provides:
  PROVIDER_URL: "http://{HOST}:{PORT}"
`
	consumerManifest = `id: consumer
requires:
  UPSTREAMS: {key: PROVIDER_URL, select: all}
templates:
  upstreams:
    contents: "{{ range upstreams \"UPSTREAMS\" }}{{ .HostPort }}\n{{ end }}"
    destination: /upstreams.txt
`
	// consulTemplateSource renders what the consumer manifest does: one
	// address:port line per healthy provider instance.
	consulTemplateSource = `{{range service "provider"}}{{.Address}}:{{.Port}}{{"\n"}}{{end}}`
	outputName           = "upstreams.txt"
)

// listenerExtras is what every bench listener's listener.yaml adds to the
// defaults: /upstreams.txt, a destination outside the default
// allow.destinations (/etc/consumer/**), and the resolver's signing key,
// so that the fleets verify every event as a default deployment does.
func (e *env) listenerExtras() string {
	return fmt.Sprintf("allow: {destinations: [/upstreams.txt]}\nevents: {public_keys: [%s]}", e.eventKey)
}

// signingKey writes the resolver's signing seed and keeps its public key
// for the listeners.
func (e *env) signingKey() (seedFile string, err error) {
	seed, public, err := events.NewKey()
	if err != nil {
		return "", err
	}
	seedFile = filepath.Join(e.dir, "resolver.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	e.eventKey = public
	return seedFile, nil
}

// publish writes the manifests and stores them in Consul (directly, not
// through a proxy: it is setup, not the fleets' work).
func (e *env) publish(ctx context.Context) error {
	dir := filepath.Join(e.dir, "services")
	for name, body := range map[string]string{"provider": providerManifest, "consumer": consumerManifest} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "patchbay.yaml"), []byte(body), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return e.runOnce(ctx, "publish", e.cfg.Patchbay, "publish", dir, "--consul-addr", e.consulAddr)
}

// runOnce runs a short command to its end, bounded by a minute.
func (e *env) runOnce(ctx context.Context, name string, argv ...string) error {
	p, err := startProc(name, e.dir, filepath.Join(e.dir, name+".log"), nil, argv...)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(time.Second)
		return ctx.Err()
	case <-time.After(time.Minute):
		p.stop(time.Second)
		return fmt.Errorf("bench: %s: no end within a minute", name)
	}
	if p.err != nil {
		out, _ := os.ReadFile(filepath.Join(e.dir, name+".log"))
		return fmt.Errorf("bench: %s: %w: %s", name, p.err, strings.TrimSpace(string(out)))
	}
	return nil
}

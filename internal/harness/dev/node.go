package dev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// NodeSpec is one simulated node: its name and what it hosts.
type NodeSpec struct {
	Name     string
	Control  string // control endpoint; "" picks a free port
	Services []ServiceSpec
}

// ServiceSpec is one hosted service; Port 0 renders its templates without
// registering an instance, as for a load balancer that provides nothing.
type ServiceSpec struct {
	Service string
	Port    int
}

// Cluster is where a simulated node finds the dev cluster.
type Cluster struct {
	Dir        string // .patchbay-dev: every node has a directory in it
	ConsulAddr string
	NATSURL    string
	Prefix     string
	Federation string
}

// listenerFile is where a node's listener.yaml is written.
func (c Cluster) listenerFile(node string) string {
	return filepath.Join(c.Dir, node, "listener.yaml")
}

// publicKeyFile holds the public key of the resolver's signing key.
func (c Cluster) publicKeyFile() string {
	return filepath.Join(c.Dir, "resolver.pub")
}

// pidFile holds the pid of the patchbay dev node process that runs node:
// a node killed with SIGKILL cannot remove its listener.yaml, and this
// tells the cluster that nobody runs it any more.
func pidFile(listenerFile string) string {
	return filepath.Join(filepath.Dir(listenerFile), "dev-node.pid")
}

// writePidFile records this process as the one running the node of
// listenerFile.
func writePidFile(listenerFile string) error {
	if err := os.MkdirAll(filepath.Dir(listenerFile), 0o755); err != nil {
		return fmt.Errorf("dev node: %w", err)
	}
	if err := os.WriteFile(pidFile(listenerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("dev node: %w", err)
	}
	return nil
}

// nodeGone reports whether the node of listenerFile was run by a
// patchbay dev node process that no longer exists. The cluster's own
// nodes have no pid file and are never gone.
func nodeGone(listenerFile string) bool {
	data, err := os.ReadFile(pidFile(listenerFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return false // being written, or not ours to judge
	}
	p, err := os.FindProcess(pid) // a pidfd on Linux
	if err != nil {
		return true
	}
	defer func() { _ = p.Release() }()
	return p.Signal(syscall.Signal(0)) != nil // signal 0 only checks the process exists
}

// forgetNode removes the files that list a node whose process is gone, so
// that the table drops it and a stopping cluster does not wait for it.
// Its rendered files stay, as after a clean stop. It removes through an
// os.Root of dir: a node directory that is a symlink cannot point the
// removal outside it.
func forgetNode(dir, listenerFile string) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return // nothing to forget in a directory that is gone
	}
	defer func() { _ = root.Close() }()
	for _, f := range []string{listenerFile, pidFile(listenerFile)} {
		if rel, err := filepath.Rel(dir, f); err == nil {
			_ = root.Remove(rel) // already gone is fine
		}
	}
}

// nodeDeps is what the nodes of one process share.
type nodeDeps struct {
	reg     *registry.Client
	bus     listener.Bus
	fetcher templates.Fetcher
	log     *slog.Logger
}

// writeListenerFile writes the node's listener.yaml: the same file runs a
// real node with `patchbay listen --config`, so users can read one.
func writeListenerFile(c Cluster, n NodeSpec) (string, error) {
	dir, err := filepath.Abs(filepath.Join(c.Dir, n.Name))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Simulated node %s of patchbay dev. A real node runs the same file with\n#   patchbay listen --config %s\n", n.Name, filepath.Join(dir, "listener.yaml"))
	fmt.Fprintf(&b, "consul-addr: %s\nnats-url: %s\nprefix: %s\nfederation: %s\n\n", c.ConsulAddr, c.NATSURL, c.Prefix, c.Federation)
	fmt.Fprintf(&b, "node: %s\naddress: 127.0.0.1\nroot: %s          # destinations go under it\nstate_dir: %s\ncontrol: %s\n",
		n.Name, dir, filepath.Join(dir, "state"), n.Control)
	keys, err := filepath.Abs(c.publicKeyFile())
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "events: {public_keys_file: %s}   # the resolver's key: events it did not sign are dropped\n", keys)
	b.WriteString("anti_entropy: 10s\nshutdown_timeout: 3s\nqueue: {quiet: 500ms, max_wait: 3s, min_interval: 5s, burst: 3}\nretry: {initial: 2s, max: 30s}\n")
	b.WriteString(localLBLines()) // local.go
	b.WriteString("\nservices:\n")
	for _, s := range n.Services {
		fmt.Fprintf(&b, "  - service: %s\n    port: %d\n", s.Service, s.Port)
	}
	path := filepath.Join(dir, "listener.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("node %s: %w", n.Name, err)
	}
	return path, nil
}

// globalKeys are the CLI settings a listener.yaml may hold beside its own.
var globalKeys = []string{"consul-addr", "nats-url", "prefix", "federation"}

// runNode runs one simulated node until ctx ends: a stand-in app answering
// health checks for each instance, and a listener in simulation mode. It
// returns once the listener has deregistered its instances.
func runNode(ctx context.Context, c Cluster, n NodeSpec, deps nodeDeps) error {
	if err := pickPorts(&n, deps.log); err != nil {
		return err
	}
	path, err := writeListenerFile(c, n)
	if err != nil {
		return err
	}
	cfg, err := listener.LoadConfig(path, globalKeys...)
	if err != nil {
		return err
	}
	apps, err := startStandIns(n, deps.log)
	if err != nil {
		return err
	}
	defer apps.stop() // after the listener deregistered: no failing checks before
	l, err := listener.New(cfg, deps.reg,
		listener.WithBus(deps.bus), listener.WithFederation(c.Federation), listener.WithLogger(deps.log),
		listener.WithFetcher(deps.fetcher), listener.WithSimulation())
	if err != nil {
		return err
	}
	return l.Run(ctx)
}

// pickPorts keeps each preferred port that is free and picks a free one
// for the others: a second dev cluster, or a test, must not collide with a
// first. The table and listener.yaml show the ports in use.
func pickPorts(n *NodeSpec, log *slog.Logger) error {
	pick := func(what, addr string) (int, error) {
		if addr != "" && portFree(addr) == nil {
			_, port, err := hostPort(addr)
			return port, err
		}
		port, err := freePort("127.0.0.1")
		if err == nil && addr != "" {
			log.Warn("port taken; using another", "node", n.Name, "for", what, "taken", addr, "port", port)
		}
		return port, err
	}
	port, err := pick("control", n.Control)
	if err != nil {
		return err
	}
	n.Control = fmt.Sprintf("127.0.0.1:%d", port)
	services := slices.Clone(n.Services)
	for i, s := range services {
		if s.Port == 0 {
			continue
		}
		if services[i].Port, err = pick(s.Service, fmt.Sprintf("127.0.0.1:%d", s.Port)); err != nil {
			return err
		}
	}
	n.Services = services
	return nil
}

// standIns are the simulated nodes' apps: an HTTP server per instance that
// answers every path (health checks included) with who it is.
type standIns struct {
	servers []*http.Server
	wg      sync.WaitGroup
}

func startStandIns(n NodeSpec, log *slog.Logger) (*standIns, error) {
	s := &standIns{}
	for _, svc := range n.Services {
		if svc.Port == 0 {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", svc.Port))
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("node %s: stand-in for %s: %w; pick another port", n.Name, svc.Service, err)
		}
		body := fmt.Sprintf("%s on %s\n", svc.Service, n.Name)
		srv := &http.Server{
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }),
			ReadHeaderTimeout: 5 * time.Second,
		}
		s.servers = append(s.servers, srv)
		s.wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("stand-in app stopped", "node", n.Name, "service", svc.Service, "err", err)
			}
		})
	}
	return s, nil
}

func (s *standIns) stop() {
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	s.wg.Wait()
}

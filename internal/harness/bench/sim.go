package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// simulate runs n listeners in this process, each with its own NATS
// subscription, throttle state and rendered file, sharing one Consul
// client and NATS connection, without drift watching (an inotify instance
// each would exceed the kernel's per-user limit). It measures one new
// provider: the time until all n files hold it, and Consul requests.
func (e *env) simulate(ctx context.Context, n int) (*Scenario, error) {
	e.logf("fleet simulation: starting %d listeners in this process", n)
	base := e.cfg.SimDir
	if base == "" {
		base = e.dir
	}
	dir, err := os.MkdirTemp(base, fmt.Sprintf("sim%d-", n))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }() // a temporary directory
	logFile, err := os.Create(filepath.Join(e.dir, "logs", fmt.Sprintf("sim%d.log", n)))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { _ = logFile.Close() }() // warnings only; a lost tail does not change the figures
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := &fleet{kind: simulated, proxy: e.proxies[simulated]}
	reg, err := registry.New(registry.WithAddress(f.proxy.Addr), registry.WithLogger(log), registry.WithSharedAgentNodes(agentNode))
	if err != nil {
		return nil, err
	}
	// Real hosts each have a NATS connection of their own, and the server
	// bounds what it buffers per connection (64 MiB): thousands of
	// listeners on one connection would make one slow consumer of the
	// whole fleet, so they share a connection per simListenersPerConn.
	conns := make([]*nats.Conn, (n+simListenersPerConn-1)/simListenersPerConn)
	for i := range conns {
		nc, err := nats.Connect(e.natsURL, nats.Name(fmt.Sprintf("patchbay bench fleet simulation %d", i)))
		if err != nil {
			return nil, fmt.Errorf("bench: nats: %w", err)
		}
		defer nc.Close()
		conns[i] = nc
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait(); e.obs.forget(f.files) }()
	for i := range n {
		l, out, err := simListener(dir, i, e.listenerExtras(), reg, conns[i/simListenersPerConn], log)
		if err != nil {
			return nil, err
		}
		if err := e.obs.add(out); err != nil {
			return nil, err
		}
		f.files = append(f.files, out)
		wg.Go(func() {
			if err := l.Run(runCtx); err != nil {
				log.Error("simulated listener stopped", "err", err)
			}
		})
	}
	fleets := map[kind]*fleet{simulated: f}
	if err := e.obs.awaitAll(ctx, time.Minute+time.Duration(n)*50*time.Millisecond, f.files, e.providers...); err != nil {
		return nil, fmt.Errorf("bench: %d simulated listeners did not render every provider: %w (log in %s)", n, err, logFile.Name())
	}
	if err := e.settle(ctx, fleets); err != nil {
		return nil, err
	}
	e.logf("fleet simulation: %d listeners, one new provider", n)
	before := snapshot(fleets)
	t, err := e.register(ctx)
	if err != nil {
		return nil, err
	}
	figs, err := e.measure(ctx, fleets, before, 2*time.Minute, t)
	if err != nil {
		return nil, err
	}
	return &Scenario{N: n, Fleets: figs, Providers: len(e.providers), Note: "listeners in one process, default queue settings, no drift watch"}, nil
}

// simListenersPerConn is how many simulated listeners share a NATS
// connection.
const simListenersPerConn = 50

// simListener writes the listener.yaml of simulated node i and makes its
// listener; it returns the file the listener renders.
func simListener(dir string, i int, extras string, reg *registry.Client, nc *nats.Conn, log *slog.Logger) (*listener.Listener, string, error) {
	root := filepath.Join(dir, strconv.Itoa(i))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	path := filepath.Join(root, "listener.yaml")
	yaml := fmt.Sprintf("node: bench-sim-%d\nroot: %s\nstate_dir: %s\ncontrol: \"off\"\n%s\nservices:\n  - service: consumer\n",
		i, root, filepath.Join(root, "state"), extras)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return nil, "", fmt.Errorf("bench: %w", err)
	}
	cfg, err := listener.LoadConfig(path)
	if err != nil {
		return nil, "", err
	}
	l, err := listener.New(cfg, reg, listener.WithBus(nc), listener.WithLogger(log), listener.WithoutDriftWatch())
	if err != nil {
		return nil, "", err
	}
	return l, filepath.Join(root, outputName), nil
}

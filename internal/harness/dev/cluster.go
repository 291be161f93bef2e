// Package dev runs patchbay dev: a whole patchbay on one machine, with a
// real Consul dev agent, a NATS server, the resolver, and
// listeners for simulated nodes that render into ./.patchbay-dev/<node>/.
package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolverd"
)

// DefaultNodes are the simulated nodes of patchbay dev, for the example
// services: two web nodes, an API node and a load balancer.
var DefaultNodes = []NodeSpec{
	{Name: "web-1", Control: "127.0.0.1:7701", Services: []ServiceSpec{{"app-www", 18081}}},
	{Name: "web-2", Control: "127.0.0.1:7702", Services: []ServiceSpec{{"app-www", 18082}}},
	{Name: "api-1", Control: "127.0.0.1:7703", Services: []ServiceSpec{{"api", 18091}}},
	{Name: "lb-1", Control: "127.0.0.1:7704", Services: []ServiceSpec{{"lb-public", 0}, {"lb-internal", 0}}},
}

// Config is a dev cluster.
type Config struct {
	Cluster
	// Services is the directory of manifests copied into Dir/services on
	// the first run; the copy is what gets published, for users to edit.
	Services   string
	SourceRoot string // where a missing Consul is built; "" if none
	Nodes      []NodeSpec
	Out        io.Writer // progress and the status table
	Live       bool      // Out is a terminal: redraw the table in place
	// Console is the web console's address, which Preflight checks is
	// free; cmd serves the console. "" for none.
	Console string
}

// Run brings the dev cluster up, shows its status until ctx ends, then
// stops every part in order: listeners (which deregister), the resolver,
// NATS, Consul.
func Run(ctx context.Context, cfg Config) error {
	unlock, err := preflight(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	if err := prepareDir(cfg); err != nil {
		return err
	}
	signer, err := makeKey(cfg.Cluster)
	if err != nil {
		return err
	}
	log, events, closeLog, err := openLog(filepath.Join(cfg.Dir, "dev.log"))
	if err != nil {
		return err
	}
	defer closeLog()
	bin, err := FindConsul(ctx, cfg.SourceRoot, cfg.Out)
	if err != nil {
		return err
	}
	natsBin, err := FindNATS(ctx, cfg.SourceRoot, cfg.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "starting Consul (%s) at %s, NATS (%s) at %s; logs in %s\n", bin, cfg.ConsulAddr, natsBin, cfg.NATSURL, filepath.Join(cfg.Dir, "dev.log"))
	// One agent serves every dev node, so every instance is held by a
	// session of its node: a resolve from another terminal must be told.
	fmt.Fprintf(cfg.Out, "in a second terminal, run %s=%s before patchbay resolve or explain: one Consul agent serves every dev node\n", "export "+registry.SharedAgentsEnv, AgentNode)
	consul, err := startConsul(ctx, bin, cfg.ConsulAddr, filepath.Join(cfg.Dir, "consul.log"))
	if err != nil {
		return err
	}
	defer consul.Stop()
	ns, err := startNATS(ctx, natsBin, cfg.NATSURL, filepath.Join(cfg.Dir, "nats.log"))
	if err != nil {
		return err
	}
	defer ns.Stop()
	reg, nc, err := connect(cfg.Cluster, "patchbay dev", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := publish(ctx, reg, filepath.Join(cfg.Dir, "services"), cfg.Out); err != nil {
		return err
	}
	lookups, err := reg.Lookups()
	if err != nil {
		return err
	}
	defer lookups.Close()

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	loop := resolverd.NewLoop(reg, nc, resolverd.WithHolder("patchbay-dev"),
		resolverd.WithDebounce(200*time.Millisecond, 2*time.Second), resolverd.WithLogger(log.With("part", "resolver")), resolverd.WithSigner(signer))
	wg.Go(func() { _ = loop.Run(ctx) })
	deps := nodeDeps{reg: reg, bus: nc, fetcher: lookups, log: log}
	for _, n := range cfg.Nodes {
		wg.Go(func() {
			if err := runNode(ctx, cfg.Cluster, n, deps); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("simulated node stopped", "node", n.Name, "err", err)
			}
		})
	}
	t := newTable(cfg.Cluster, cfg.Out, cfg.Live, events)
	wg.Go(func() { t.run(ctx) })
	<-ctx.Done()
	fmt.Fprintln(cfg.Out, "\nstopping: listeners deregister their instances, then the resolver, NATS and Consul stop")
	stopDevNodes(nc, cfg, log)
	wg.Wait()
	return nil
}

// RunNode runs one more simulated node against a running dev cluster
// until ctx ends, then deregisters it and removes its listener.yaml.
//
// It also stops when the dev cluster does: told over NATS by a cluster
// that stops cleanly, or on losing NATS, which only a stopped or killed
// cluster closes. A node that outlived its cluster would register itself
// into the next one, a ghost of a node nobody started there.
func RunNode(ctx context.Context, c Cluster, n NodeSpec, out io.Writer) error {
	logPath := filepath.Join(c.Dir, n.Name+".log")
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("dev node: %w", err)
	}
	log, _, closeLog, err := openLog(logPath)
	if err != nil {
		return err
	}
	defer closeLog()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	reg, nc, err := connect(c, "patchbay dev node "+n.Name, log,
		nats.DisconnectErrHandler(func(*nats.Conn, error) { stop(errClusterGone) }))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.Subscribe(stopSubject, func(*nats.Msg) { stop(errClusterStopping) })
	if err != nil {
		return fmt.Errorf("dev node: subscribe %s: %w", stopSubject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if _, err := reg.Snapshot(ctx); err != nil {
		return fmt.Errorf("no dev cluster at %s (%w): start one with patchbay dev first", c.ConsulAddr, err)
	}
	lookups, err := reg.Lookups()
	if err != nil {
		return err
	}
	defer lookups.Close()
	if err := writePidFile(c.listenerFile(n.Name)); err != nil {
		return err
	}
	defer forgetNode(c.Dir, c.listenerFile(n.Name)) // the table drops the node; a file left over is overwritten next start
	fmt.Fprintf(out, "node %s: hosting %s; listener.yaml in %s, logs in %s; Ctrl-C deregisters and stops it\n",
		n.Name, serviceList(n), c.listenerFile(n.Name), logPath)
	err = runNode(ctx, c, n, nodeDeps{reg: reg, bus: nc, fetcher: lookups, log: log})
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	why := ""
	if cause := context.Cause(ctx); errors.Is(cause, errClusterStopping) || errors.Is(cause, errClusterGone) {
		why = ": " + cause.Error()
	}
	fmt.Fprintf(out, "node %s stopped%s\n", n.Name, why)
	return err
}

// makeKey makes the resolver's signing key of this run, as production
// does with patchbay keygen: the seed in Dir/resolver.nk (0600), the
// public key in Dir/resolver.pub, which every node's listener.yaml names,
// so that a dev cluster drops events the resolver did not sign.
func makeKey(c Cluster) (*events.Signer, error) {
	seed, public, err := events.NewKey()
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	if err := os.WriteFile(filepath.Join(c.Dir, "resolver.nk"), append(seed, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("dev: signing key: %w", err)
	}
	if err := os.WriteFile(c.publicKeyFile(), []byte(public+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("dev: signing key: %w", err)
	}
	return events.NewSigner(seed)
}

// stopSubject is where a stopping dev cluster tells its dev nodes to stop.
const stopSubject = "patchbay.dev.stopping"

var (
	errClusterStopping = errors.New("the dev cluster is stopping")
	errClusterGone     = errors.New("lost the dev cluster's NATS: the cluster stopped or was killed")
)

// stopDevNodes tells the dev nodes (patchbay dev node) to stop and waits
// a while for them: they deregister through Consul, which stops after.
// Each removes its listener.yaml on the way out.
func stopDevNodes(nc *nats.Conn, cfg Config, log *slog.Logger) {
	err := nc.Publish(stopSubject, nil)
	if err == nil {
		err = nc.FlushTimeout(2 * time.Second)
	}
	if err != nil {
		log.Warn("cannot tell the dev nodes to stop; they stop once NATS is gone", "err", err)
	}
	own := map[string]bool{}
	for _, n := range cfg.Nodes {
		own[cfg.listenerFile(n.Name)] = true
	}
	others := func() (left []string) {
		for _, f := range nodeFiles(cfg.Dir) {
			switch {
			case own[f]:
			case nodeGone(f): // killed: nothing will remove its file, nothing to wait for
				forgetNode(cfg.Dir, f)
			default:
				left = append(left, f)
			}
		}
		return left
	}
	if left := others(); len(left) > 0 && cfg.Out != nil {
		fmt.Fprintf(cfg.Out, "waiting up to 15s for %d dev node(s) to deregister: %s\n", len(left), strings.Join(left, ", "))
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(others()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling the files the nodes remove, with the deadline above
	}
	if left := others(); len(left) > 0 {
		log.Warn("dev nodes did not stop in time; they stop once NATS is gone", "listener_files", left)
		if cfg.Out != nil {
			fmt.Fprintf(cfg.Out, "dev nodes did not stop within 15s (%s); they stop once NATS is gone\n", strings.Join(left, ", "))
		}
	}
}

func serviceList(n NodeSpec) string {
	var parts []string
	for _, s := range n.Services {
		if s.Port == 0 {
			parts = append(parts, s.Service)
		} else {
			parts = append(parts, fmt.Sprintf("%s on 127.0.0.1:%d", s.Service, s.Port))
		}
	}
	return strings.Join(parts, ", ")
}

// dirMarker marks a directory patchbay dev made, and may therefore clear.
const dirMarker = ".patchbay-dev"

// checkDirOurs refuses a directory with files that patchbay dev did not
// make: it clears the directory on every start.
func checkDirOurs(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, dirMarker)); err != nil && len(entries) > 0 {
		return fmt.Errorf("%w: --dir %s is not empty and was not made by patchbay dev, which clears it on every start; give a new or empty directory", ErrInUse, dir)
	}
	return nil
}

// prepareDir empties Dir of the last run's nodes (Consul starts empty, so
// their files are stale) and copies the manifests in on the first run.
func prepareDir(cfg Config) error {
	if err := checkDirOurs(cfg.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	marker := filepath.Join(cfg.Dir, dirMarker)
	if err := os.WriteFile(marker, fmt.Appendf(nil, "made by patchbay dev, which clears this directory (but services/) on every start\npid %d\n", os.Getpid()), 0o644); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for _, e := range entries {
		if e.Name() != "services" && e.Name() != dirMarker {
			if err := os.RemoveAll(filepath.Join(cfg.Dir, e.Name())); err != nil {
				return fmt.Errorf("dev: clean %s: %w", cfg.Dir, err)
			}
		}
	}
	dst := filepath.Join(cfg.Dir, "services")
	if _, err := os.Stat(dst); err == nil {
		fmt.Fprintf(cfg.Out, "publishing %s (edited copies are kept; delete it to start from %s again)\n", dst, cfg.Services)
		return nil
	}
	if cfg.Services == "" {
		return fmt.Errorf("dev: no manifests: give --services DIR (like examples/services of patchbay's source)")
	}
	if err := os.CopyFS(dst, os.DirFS(cfg.Services)); err != nil {
		return fmt.Errorf("dev: copy %s: %w", cfg.Services, err)
	}
	fmt.Fprintf(cfg.Out, "copied %s to %s: edit it there and patchbay publish it\n", cfg.Services, dst)
	return nil
}

// connect opens the registry client and a NATS connection that rides out
// restarts.
func connect(c Cluster, name string, log *slog.Logger, opts ...nats.Option) (*registry.Client, *nats.Conn, error) {
	reg, err := registry.New(registry.WithAddress(c.ConsulAddr), registry.WithPrefix(c.Prefix), registry.WithLogger(log), registry.WithSharedAgentNodes(AgentNode))
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(c.NATSURL, append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats %s: %w; is patchbay dev running?", c.NATSURL, err)
	}
	return reg, nc, nil
}

// publish stores every manifest and datastore of dir.
func publish(ctx context.Context, reg *registry.Client, dir string, out io.Writer) error {
	set, err := manifest.Load(dir)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	var names []string
	for _, s := range set.Services {
		if _, err := reg.Publish(ctx, &s.Manifest); err != nil {
			return err
		}
		names = append(names, s.Manifest.ID)
	}
	for _, d := range set.Datastores {
		if _, err := reg.PublishDatastores(ctx, &d.Datastores); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "published %s and %d datastores file(s)\n", strings.Join(names, ", "), len(set.Datastores))
	return nil
}

// nodeFiles lists the listener.yaml of every node in dir, started by this
// process or by patchbay dev node.
func nodeFiles(dir string) []string {
	matches, _ := fs.Glob(os.DirFS(dir), "*/listener.yaml")
	for i, m := range matches {
		matches[i] = filepath.Join(dir, m)
	}
	return matches
}

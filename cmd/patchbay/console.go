package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/console"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/dev"
	"github.com/patchbay/patchbay/registry"
)

// defaultConsoleAddr is loopback, since the console shows the whole
// cluster, on a port clear of Consul's (8500-8503, DNS 8600).
const defaultConsoleAddr = "127.0.0.1:8700"

type consoleFlags struct {
	addr    string
	actions bool
	hosts   []string
	refresh time.Duration
	// sharedAgents are Consul nodes serving several patchbay nodes
	// (registry.WithSharedAgentNodes): patchbay dev's agent.
	sharedAgents []string
}

func newConsoleCmd(a *app) *cobra.Command {
	var f consoleFlags
	cmd := &cobra.Command{
		Use:   "console [--http-addr 127.0.0.1:8700]",
		Short: "Serve a live web console of the cluster",
		Long: `console serves a web page, from this binary, that shows the cluster live
(server-sent events, no reload): the dependency graph of every federation
(services, the keys they provide and require, datastores, public and private
services, edges labelled with the key they bind, unresolved requirements and
cycles in red), each service's instances (node, address, health) and its
bindings per region with their revision and why each requirement resolved as
it did (a button runs explain), and every node's last run, result and reason
and the halted rollout groups, and the recent changes spreading: per change
(the binding revisions one resolver pass wrote) the nodes that applied it
and when, those pending, paused, stale or failed and why, and the time from
the resolver's write to each node's files (p50, p99, slowest node), as
'patchbay wait' sees them. The live listeners are asked for their queue
every --refresh only while someone watches (a page is open, or /api/state
was asked within the last three refreshes); else nothing wakes them.

It is read-only unless --allow-actions, which adds a "resume" button to
halted rollout groups. Every request must name the console by a loopback
address, localhost or an --allow-host name (against DNS rebinding), and a
state-changing one must come from the console's own page (Origin checked,
JSON only). Bind it elsewhere than loopback only behind a proxy that
authenticates.`,
		Example: `  patchbay console
  patchbay console --http-addr 0.0.0.0:8600 --allow-host patchbay.internal --allow-actions`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var wg sync.WaitGroup
			defer wg.Wait()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			url, run, err := a.startConsole(ctx, &wg, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "patchbay console at %s\n", url)
			return run()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "http-addr", defaultConsoleAddr, "address to serve the console on (--addr before; still accepted)")
	fl.BoolVar(&f.actions, "allow-actions", false, "allow state changes from the page (resume a halted rollout group)")
	fl.StringArrayVar(&f.hosts, "allow-host", nil, "a host name the console may be addressed by, besides loopback and localhost (repeatable)")
	fl.DurationVar(&f.refresh, "refresh", 2*time.Second, "how often live listeners are asked for their state over NATS while a page or a script watches; what Consul records shows at once")
	return cmd
}

// startConsole listens on f.addr and returns the console's URL and the
// function that runs it until ctx ends.
func (a *app) startConsole(ctx context.Context, wg *sync.WaitGroup, f consoleFlags) (string, func() error, error) {
	var regOpts []registry.Option
	if len(f.sharedAgents) > 0 {
		regOpts = append(regOpts, registry.WithSharedAgentNodes(f.sharedAgents...))
	}
	reg, err := a.registry(regOpts...)
	if err != nil {
		return "", nil, err
	}
	opts := []console.Option{console.WithLogger(a.logger()), console.WithActions(f.actions), console.WithAllowedHosts(f.hosts...), console.WithRefresh(f.refresh)}
	nc, err := a.dialNATS("patchbay console", nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err == nil {
		opts = append(opts, console.WithLiveStatuses(func(ctx context.Context, recorded []registry.Status) []registry.Status {
			return askStatuses(ctx, nc, recorded)
		}), console.WithLiveChanges(func(ctx context.Context) map[string]events.NodeChanges {
			answers, _ := events.AskChanges(ctx, nc, nil, 300*time.Millisecond)
			return answers
		}))
	}
	srv := console.New(reg, opts...)
	bound, err := a.serveHTTP(ctx, wg, f.addr, "console", srv.Handler())
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return "", nil, err
	}
	run := func() error {
		if nc != nil {
			defer nc.Close()
		}
		return srv.Run(ctx)
	}
	return "http://" + bound.String() + "/", run, nil
}

// askStatuses lays the live listeners' answers over the recorded
// statuses, waiting at most consoleStatusWait: a page refresh cannot wait
// as long as patchbay status does. Without NATS it returns recorded.
func askStatuses(ctx context.Context, nc *nats.Conn, recorded []registry.Status) []registry.Status {
	statuses, _ := events.AskStatus(ctx, nc, recorded, consoleStatusWait) // on error: recorded, as without NATS
	return statuses
}

// consoleStatusWait bounds how long a console refresh waits for listeners.
const consoleStatusWait = 300 * time.Millisecond

// devConsole starts the console for patchbay dev and prints its URL; it
// shows the registry's error until dev's Consul is up. The returned
// function stops it and waits for it.
func (a *app) devConsole(ctx context.Context, addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	url, run, err := a.startConsole(ctx, &wg, consoleFlags{addr: addr, refresh: time.Second, sharedAgents: []string{dev.AgentNode}})
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	fmt.Fprintf(a.stdout, "console: %s\n", url)
	wg.Go(func() { _ = run() })
	return func() { cancel(); wg.Wait() }, nil
}

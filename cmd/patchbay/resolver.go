package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/resolver/daemon"
)

func newResolverCmd(a *app) *cobra.Command {
	var quiet, maxWait time.Duration
	var httpAddr string
	hostname, _ := os.Hostname()
	holder := hostname
	cmd := &cobra.Command{
		Use:   "resolver",
		Short: "Run the resolver daemon: keep bindings in Consul up to date",
		Long: `The resolver watches the registry with one blocking query, waits for a quiet
moment (--quiet, at most --max-wait after the first change), resolves every
service, writes the bindings that changed to Consul and announces each on NATS
(patchbay.<federation>.bindings.<service>).

Run two or more for availability: one leads through a Consul lock, the others
stand by and take over when it stops. It survives Consul and NATS outages,
retrying with backoff; listeners catch up on any missed announcement.

Signals: SIGTERM or Ctrl-C releases the leader lock (a standby leads at once)
and exits 0. SIGHUP is logged and ignored: the resolver has no file to
reload; change its settings with a restart.

--http-addr serves Prometheus metrics at /metrics (passes, bindings written,
leadership, the lag from a registry change to the bindings written) and
/healthz ({"status": "ok", "leading": true|false, "last_pass": ...}).`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hup := make(chan os.Signal, 1) // caught from the start
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reg, err := a.registry()
			if err != nil {
				return err
			}
			nc, err := a.connectNATS("patchbay resolver " + holder)
			if err != nil {
				return err
			}
			defer nc.Close()
			var wg sync.WaitGroup
			defer wg.Wait() // after stop below
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			wg.Go(func() {
				a.ignoreHangup(ctx, hup, "the resolver has no file to reload; restart it to change its settings")
			})
			metrics, err := a.resolverMetrics(ctx, &wg, httpAddr)
			if err != nil {
				return err
			}
			opts := append([]daemon.LoopOption{daemon.WithHolder(holder), daemon.WithDebounce(quiet, maxWait), daemon.WithLogger(a.logger())}, metrics...)
			loop := daemon.NewLoop(reg, nc, opts...)
			sd := notifier{a.logger()}
			wg.Go(func() { sd.watchdog(ctx, loop.Alive) })
			wg.Go(func() { <-ctx.Done(); sd.stopping() })
			sd.ready("resolving as " + holder)
			return loop.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&quiet, "quiet", daemon.DefaultQuiet, "an isolated change is resolved at once; changes within this long of a pass wait until the registry has been unchanged this long")
	f.DurationVar(&maxWait, "max-wait", daemon.DefaultMaxWait, "resolve at the latest this long after the first change of a burst")
	f.StringVar(&holder, "name", holder, "name of this resolver in the leader lock")
	f.StringVar(&httpAddr, "http-addr", "", "serve GET /metrics (Prometheus) and GET /healthz on this address, e.g. 127.0.0.1:9102 (default: off)")
	return cmd
}

// ignoreHangup logs each SIGHUP until ctx ends, so that a daemon without
// a file to reload survives one (Go's default for SIGHUP ends the process).
func (a *app) ignoreHangup(ctx context.Context, hup <-chan os.Signal, why string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.logger().Warn("SIGHUP ignored: " + why)
		}
	}
}

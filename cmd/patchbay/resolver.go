package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/resolverd"
)

func newResolverCmd(a *app) *cobra.Command {
	var quiet, maxWait time.Duration
	var httpAddr string
	signingKey := os.Getenv("PATCHBAY_SIGNING_KEY_FILE")
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

Every flag may also be set in the --config file, under resolver: with the
flag's name as key (resolver: {quiet: 2s, http-addr: 127.0.0.1:9102}); the
environment and the command line beat the file.

Signals: SIGTERM or Ctrl-C releases the leader lock (a standby leads at once)
and exits 0. SIGHUP is logged and ignored: the resolver has no file to
reload; change its settings with a restart.

--signing-key-file names the seed of the key that signs every bindings event
(patchbay keygen writes one, mode 0600); listeners given its public key in
listener.yaml (events.public_keys) apply no event it did not sign. Without it
events go unsigned, and the resolver says so at start.

--http-addr serves Prometheus metrics at /metrics (passes, bindings written,
leadership, the lag from a registry change to the bindings written) and
/healthz ({"status": "ok", "leading": true|false, "last_pass": ...}).`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			hup := make(chan os.Signal, 1) // caught from the start
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			signer, err := a.signer(signingKey)
			if err != nil {
				return err
			}
			reg, err := a.registry()
			if err != nil {
				return err
			}
			nc, err := a.connectNATS("patchbay resolver " + holder)
			if err != nil {
				return err
			}
			defer nc.Close()
			a.logSigning(signer)
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
			opts := append([]resolverd.LoopOption{resolverd.WithHolder(holder), resolverd.WithDebounce(quiet, maxWait), resolverd.WithLogger(a.logger()), resolverd.WithSigner(signer)}, metrics...)
			loop := resolverd.NewLoop(reg, nc, opts...)
			sd := notifier{a.logger()}
			wg.Go(func() { sd.watchdog(ctx, loop.Alive) })
			wg.Go(func() { <-ctx.Done(); sd.stopping() })
			sd.ready("resolving as " + holder)
			return loop.Run(ctx)
		},
	}
	cmd.Annotations = map[string]string{sectionAnnotation: "resolver"}
	f := cmd.Flags()
	f.DurationVar(&quiet, "quiet", resolverd.DefaultQuiet, "an isolated change is resolved at once; changes within this long of a pass wait until the registry has been unchanged this long")
	f.DurationVar(&maxWait, "max-wait", resolverd.DefaultMaxWait, "resolve at the latest this long after the first change of a burst")
	f.StringVar(&holder, "name", holder, "name of this resolver in the leader lock")
	f.StringVar(&signingKey, "signing-key-file", signingKey, "sign bindings events with the seed in this file, from patchbay keygen (mode 0600) [$PATCHBAY_SIGNING_KEY_FILE]")
	f.StringVar(&httpAddr, "http-addr", "", "serve GET /metrics (Prometheus) and GET /healthz on this address, e.g. 127.0.0.1:9102 (default: off)")
	_ = f.SetAnnotation("signing-key-file", envAnnotation, []string{"PATCHBAY_SIGNING_KEY_FILE"}) // the flag was just added
	return cmd
}

// signer reads the resolver's signing key; nil without one.
func (a *app) signer(file string) (*events.Signer, error) {
	if file == "" {
		return nil, nil
	}
	return readSigningKey(file)
}

// logSigning says once the daemon is up how its events are signed.
func (a *app) logSigning(s *events.Signer) {
	if s == nil {
		a.logger().Warn("bindings events are published unsigned: listeners that trust a key drop them, and the others cannot tell them from forgeries; give --signing-key-file (patchbay keygen)")
		return
	}
	a.logger().Info("signing bindings events", "public_key", s.PublicKey())
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

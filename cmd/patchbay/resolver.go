package main

import (
	"fmt"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/resolver"
)

func newResolverCmd(a *app) *cobra.Command {
	var quiet, maxWait time.Duration
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
retrying with backoff; listeners catch up on any missed announcement.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			nc, err := a.connectNATS("patchbay resolver " + holder)
			if err != nil {
				return err
			}
			defer nc.Close()
			loop := resolver.NewLoop(reg, nc, resolver.WithHolder(holder), resolver.WithDebounce(quiet, maxWait), resolver.WithLogger(a.logger()))
			return loop.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.DurationVar(&quiet, "quiet", 500*time.Millisecond, "resolve once the registry has been unchanged this long")
	f.DurationVar(&maxWait, "max-wait", 5*time.Second, "resolve at the latest this long after the first change of a burst")
	f.StringVar(&holder, "name", holder, "name of this resolver in the leader lock")
	return cmd
}

// connectNATS connects with unlimited reconnects; the connection may start
// while NATS is down and catches up when it comes.
func (a *app) connectNATS(name string) (*nats.Conn, error) {
	log := a.logger()
	nc, err := nats.Connect(a.g.NATSURL,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay()),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats disconnected", "url", a.g.NATSURL, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", a.g.NATSURL, err)
	}
	return nc, nil
}

// reconnectDelay backs off exponentially (jittered, 100ms to 30s) between
// attempts to reach NATS, so a fleet of hosts does not hammer a NATS that
// comes back. nats.go calls it from its one reconnect goroutine, with
// attempts counting from 1 again after every successful reconnect.
func reconnectDelay() func(attempts int) time.Duration {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 30*time.Second, 0
	return func(attempts int) time.Duration {
		if attempts <= 1 {
			b.Reset()
		}
		return b.NextBackOff()
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/listener"
)

type listenFlags struct {
	once      bool
	converged time.Duration
	asJSON    bool
	dryRun    bool // with once: listen_dryrun.go
	diff      bool
	check     bool
	procs     int // --gomaxprocs
}

func newListenCmd(a *app) *cobra.Command {
	var f listenFlags
	cmd := &cobra.Command{
		Use:   "listen --config listener.yaml [--once] [--converged-timeout D]",
		Short: "Run the listener daemon: keep this node's instances registered and its files in step",
		Long: `listen runs the listener of one node, as configured by listener.yaml (see
examples/listener.yaml; the same file may hold the global settings, like
consul-addr and nats-url).

It registers the node's instances, subscribes to the NATS events of their
bindings, and turns every burst of changes into one queued, throttled
provision run: read the bindings in one consistent read, render every
template, install the files that changed (checked first), run each distinct
reload command once, then the provision commands (in "after:" order). A
service with unresolved requirements is skipped and keeps its last good files.
Services in a rollout group apply a few nodes at a time and halt the group
when one fails. Files edited by hand are restored at once. Every 30 s
(anti_entropy) it compares what it holds with Consul, which wins, so a lost
event delays a change, and a forged event lasts, at most that.

Signals: SIGTERM or Ctrl-C lets the running step finish (shutdown_timeout),
deregisters the instances and exits 0; SIGHUP reloads listener.yaml.

Under systemd (NOTIFY_SOCKET set; Type=notify or notify-reload) it reports
READY=1 once running, RELOADING=1 and READY=1 around each reload, STOPPING=1
on the way out, and pings the watchdog at half WatchdogSec= while its loops
answer (a wedged daemon stops pinging, and systemd restarts it).

The control endpoint (control, default ` + listener.DefaultControlAddr + `) serves
/healthz, /status and /metrics, and patchbay pause, resume and provision.`,
		Example: `  patchbay listen --config /etc/patchbay/listener.yaml
  patchbay listen --config listener.yaml --once            # bootstrap: one run, then exit
  patchbay listen --config listener.yaml --converged-timeout 30s`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.listen(cmd.Context(), f) },
		// --config is listener.yaml: its own loader reports its problems.
		Annotations: map[string]string{configAnnotation: configListener},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.once, "once", false, "run one provision without registering or subscribing, then exit (1 if it failed)")
	fl.DurationVar(&f.converged, "converged-timeout", 0, "exit 0 once nothing has changed for this long after the first run (0: run until stopped)")
	fl.BoolVar(&f.asJSON, "json", false, "with --once, print the run's report as JSON")
	fl.BoolVar(&f.dryRun, "dry-run", false, "with --once, print what the run would change and change nothing (see below)")
	fl.BoolVar(&f.diff, "diff", false, "with --dry-run, print a unified diff of each file that would change")
	cmd.Long += dryRunHelp
	fl.IntVar(&f.procs, "gomaxprocs", 1, "threads that run Go code at once: the listener mostly waits on files, commands and the network, and one thread spares each change the wake-ups between threads (0: Go's default, one per CPU; a GOMAXPROCS environment variable wins)")
	fl.BoolVar(&f.check, "check-config", false, "check listener.yaml and exit: 0 when it is valid, else 1 with its problems (systemd's ExecReload runs it before the SIGHUP)")
	return cmd
}

func (a *app) listen(ctx context.Context, f listenFlags) error {
	if a.g.ConfigFile == "" {
		return usageErrorf("listen needs --config listener.yaml (see examples/listener.yaml)")
	}
	if f.check {
		if _, err := a.startupListenerConfig(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(a.stdout, "%s is valid\n", a.g.ConfigFile)
		return err
	}
	if f.procs < 0 {
		return usageErrorf("--gomaxprocs %d: give 1 (the default), another number of threads, or 0 for one per CPU", f.procs)
	}
	if n, ok := maxProcs(f.procs, os.Getenv("GOMAXPROCS")); ok {
		runtime.GOMAXPROCS(n)
	}
	// Caught from the start: Go's default for SIGHUP ends the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := a.startupListenerConfig()
	if err != nil {
		return err
	}
	reg, err := a.registry()
	if err != nil {
		return err
	}
	lookups, err := reg.Lookups()
	if err != nil {
		return err
	}
	defer lookups.Close()
	opts := []listener.Option{
		listener.WithFederation(a.g.Federation), listener.WithLogger(a.logger()), listener.WithFetcher(lookups),
	}
	if f.dryRun || f.diff {
		return a.listenDryRun(ctx, cfg, reg, opts, f)
	}
	if f.once {
		return a.listenOnce(ctx, cfg, reg, opts, f)
	}
	nc, err := a.connectNATS("patchbay listen " + cfg.Node)
	if err != nil {
		return err
	}
	defer nc.Close()
	opts = append(opts, listener.WithBus(nc), listener.WithConvergedTimeout(f.converged), listener.WithRunHook(releaseStartup()))
	l, err := listener.New(cfg, reg, opts...)
	if err != nil {
		return err
	}
	a.resyncOnEventLoss(nc, l)
	var wg sync.WaitGroup
	defer wg.Wait() // after stop below: the reloader ends with ctx
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sd := notifier{a.logger()}
	wg.Go(func() { a.reloadOnHangup(ctx, hup, l, sd) })
	wg.Go(func() { sd.watchdog(ctx, l.Alive) })
	sd.ready("listening; node " + cfg.Node)
	return l.Run(ctx)
}

func (a *app) listenOnce(ctx context.Context, cfg *listener.Config, reg listener.Registry, opts []listener.Option, f listenFlags) error {
	l, err := listener.New(cfg, reg, opts...)
	if err != nil {
		return err
	}
	report, err := l.Once(ctx)
	if f.asJSON && report != nil {
		if perr := a.printJSON(report); perr != nil {
			return perr
		}
	} else if report != nil {
		fmt.Fprintf(a.stderr, "provision %s in %s\n", report.Result, report.Duration.Round(time.Millisecond))
		for _, s := range report.Services {
			line := fmt.Sprintf("  %s: %s (revision %d)", s.Service, s.Result, s.Revision)
			if s.Reason != "" {
				line += ": " + s.Reason
			}
			fmt.Fprintln(a.stderr, line)
		}
	}
	return err
}

// reloadOnHangup reloads listener.yaml on SIGHUP; an invalid file is
// reported and the running config kept. It tells systemd of each reload
// and, when ctx ends, that the listener is stopping.
func (a *app) reloadOnHangup(ctx context.Context, hup <-chan os.Signal, l *listener.Listener, sd notifier) {
	log := a.logger()
	for {
		select {
		case <-ctx.Done():
			sd.stopping()
			return
		case <-hup:
			sd.reloading()
			cfg, err := a.loadListenerConfig()
			if err != nil {
				log.Error("SIGHUP: listener.yaml not reloaded; the running config stays", "err", err)
				sd.ready("listener.yaml not reloaded, the running config stays: " + strings.Join(strings.Fields(err.Error()), " "))
				continue
			}
			l.Reload(cfg)
			sd.ready("listening; listener.yaml reloaded")
		}
	}
}

// startupListenerConfig is listener.yaml as loading the settings read it,
// else (a command run without them) read now.
func (a *app) startupListenerConfig() (*listener.Config, error) {
	if a.listenerConfig != nil {
		return a.listenerConfig, nil
	}
	return a.loadListenerConfig()
}

// loadListenerConfig reads --config as listener.yaml; the global settings
// and the other commands' sections may share the file.
func (a *app) loadListenerConfig() (*listener.Config, error) {
	ignore := slices.Clone(fileOnlyKeys)
	ignore = append(ignore, sectionNames...)
	for _, s := range settings {
		ignore = append(ignore, s.name)
	}
	return listener.LoadConfig(a.g.ConfigFile, ignore...)
}

// resyncOnEventLoss has the listener read Consul whenever NATS may have
// dropped events meant for it: after a reconnect, and when nats.go dropped
// messages because the listener fell behind.
func (a *app) resyncOnEventLoss(nc *nats.Conn, l *listener.Listener) {
	log := a.logger()
	nc.SetReconnectHandler(func(c *nats.Conn) {
		log.Info("nats reconnected; reading Consul for what was missed", "url", c.ConnectedUrlRedacted())
		l.Resync("nats reconnected")
	})
	nc.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			l.Resync("events dropped by a slow consumer")
		}
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		log.Warn("nats error", "subject", subject, "err", err)
	})
}

// maxProcs is the GOMAXPROCS --gomaxprocs asks for, if it is to be set:
// not when it leaves Go's default (0), nor when the environment variable
// already chose.
func maxProcs(flag int, env string) (int, bool) {
	return flag, flag > 0 && env == ""
}

// releaseStartup returns a run hook that, after the first run, collects
// the garbage of starting up (manifests read, templates parsed, the first
// render) and gives the memory back to the OS. Otherwise the heap stays
// just under the collector's 4 MB goal, and the first change after a start
// pays for that collection in the middle of its run, on every node at
// once: in `make bench`, 100 listeners took 0.64 s instead of 0.36 s (p99)
// to apply an isolated change.
func releaseStartup() func(listener.RunReport) {
	var once sync.Once
	return func(listener.RunReport) { once.Do(debug.FreeOSMemory) }
}

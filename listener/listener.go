package listener

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/patchbay/patchbay/internal/alive"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/listener/balance"
	"github.com/patchbay/patchbay/listener/command"
	"github.com/patchbay/patchbay/listener/install"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// Registry is what the listener needs of the registry.
type Registry interface {
	Register(ctx context.Context, spec registry.InstanceSpec, opts ...registry.OwnerOption) (*registry.Owner, error)
	ReadNode(ctx context.Context, fed string, services []string, region string) ([]registry.HostedService, error)
	PutStatus(ctx context.Context, s registry.Status) error
	Rollout(fed, group string) (*registry.RolloutGroup, error)
	WatchHealth(ctx context.Context, service, instanceID string, index uint64, wait time.Duration) (registry.CheckState, uint64, error)
}

var _ Registry = (*registry.Client)(nil)

// Bus is where binding and rollout events arrive.
type Bus interface {
	Subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error)
}

var _ Bus = (*nats.Conn)(nil)

// ErrControl: the control endpoint cannot listen (address in use).
var ErrControl = errkind.New(errkind.Input, "listener: control endpoint")

// Listener is the daemon of one node: it registers the node's instances,
// follows changes to their bindings, and runs provisions through its queue.
type Listener struct {
	reg       Registry
	bus       Bus // nil: no events, anti-entropy only
	fed       string
	log       *slog.Logger
	ownerOpts []registry.OwnerOption
	fetcher   templates.Fetcher
	converged time.Duration // 0: run until stopped
	onRun     func(RunReport)
	simulated bool // commands logged, not run; files keep this process's owner
	noDrift   bool // files are not watched for drift

	cfg      atomic.Pointer[Config]
	reloads  chan *Config
	groups   chan []string // rollout groups of the hosted services, from runs
	queue    *Queue
	files    *install.Files
	commands *command.Runner
	renderer *templates.Renderer
	metrics  *Metrics
	control  *ControlServer
	inputs   *inputs  // what runs read, kept current by events
	changes  *changes // revisions received and applied, for patchbay wait
	lb       *balance.Balancer
	local    *localLB // the node's HAProxy for via: local (local_run.go)
	// malformedLog bounds the log lines of a flood of malformed messages.
	malformedLog *rate.Sometimes
	// rejectedLog bounds those of events whose signature is refused.
	rejectedLog *rate.Sometimes

	// Written by one goroutine each, read by others for status and events.
	queueState atomic.Pointer[QueueState]
	lastRun    atomic.Pointer[RunReport]
	lastOK     atomic.Pointer[time.Time]
	seen       atomic.Pointer[map[string]seenInputs] // written by runs
	owners     atomic.Pointer[map[string]*registry.Owner]
	ownersMu   sync.Mutex    // serializes registrars' copy-on-write of owners
	activity   chan struct{} // a queue change, for the converged timeout
	probes     *alive.Probe  // taken only by supervise's select

	// Owned by the provision run; the queue runs one at a time.
	provisioned map[string]seenInputs // inputs of each service's last successful provision
	// provisionedView digests what each service saw of those inputs.
	provisionedView map[string]string
	failedReloads   map[string]reloadJob // reload commands that failed, run again next time
	recorded        string               // outcome of the status last written to Consul
}

// seenInputs identifies what a run read for a service.
type seenInputs struct {
	bindingIndex, manifestIndex uint64
	revision                    uint64
	region                      string // of the binding used
	halted                      string // rollout group the run found halted
}

// Option configures a Listener.
type Option func(*Listener)

// WithBus subscribes the listener to binding and rollout events.
func WithBus(b Bus) Option { return func(l *Listener) { l.bus = b } }

// WithFederation sets the federation of the hosted services (default "default").
func WithFederation(fed string) Option { return func(l *Listener) { l.fed = fed } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Listener) { l.log = log } }

// WithOwnerOptions tunes the registration of instances.
func WithOwnerOptions(opts ...registry.OwnerOption) Option {
	return func(l *Listener) { l.ownerOpts = opts }
}

// WithFetcher lets templates use consul-template lookups (key, service, ...).
func WithFetcher(f templates.Fetcher) Option { return func(l *Listener) { l.fetcher = f } }

// WithConvergedTimeout makes Run return once the queue has been idle for d
// after its first run: the node has converged.
func WithConvergedTimeout(d time.Duration) Option { return func(l *Listener) { l.converged = d } }

// WithRunHook has fn called after every provision run, from the run's
// goroutine, before the run's status is published: keep it short.
func WithRunHook(fn func(RunReport)) Option { return func(l *Listener) { l.onRun = fn } }

// WithSimulation makes the listener one of several simulated nodes on one
// machine (patchbay dev): check, reload and provision commands are logged
// as "would run" instead of run, because `systemctl reload` or `nginx -s
// reload` would act on the machine itself, and installed files keep this
// process's owner and group.
func WithSimulation() Option { return func(l *Listener) { l.simulated = true } }

// WithoutDriftWatch makes the listener install its files without watching
// them for drift (no inotify instance): for many listeners in one process,
// as in the fleet simulation of `make bench`.
func WithoutDriftWatch() Option { return func(l *Listener) { l.noDrift = true } }

// New returns a listener for cfg; Run starts it.
func New(cfg *Config, reg Registry, opts ...Option) (*Listener, error) {
	l := &Listener{
		reg: reg, fed: "default", log: slog.Default(),
		reloads: make(chan *Config, 1), groups: make(chan []string, 1), activity: make(chan struct{}, 1), probes: alive.New(),
		metrics: NewMetrics(), provisioned: map[string]seenInputs{}, provisionedView: map[string]string{}, inputs: newInputs(), changes: newChanges(),
		malformedLog: &rate.Sometimes{Interval: 10 * time.Second}, rejectedLog: &rate.Sometimes{Interval: 10 * time.Second},
	}
	for _, o := range opts {
		o(l)
	}
	l.log = l.log.With("node", cfg.Node)
	l.local = newLocalLB(l.log, l.metrics, l.Provision)
	l.cfg.Store(cfg)
	command.WarnShellGlobs(l.log, cfg.File, cfg.Allow.Commands)
	l.queueState.Store(&QueueState{})
	l.seen.Store(&map[string]seenInputs{})
	l.owners.Store(&map[string]*registry.Owner{})
	q := cfg.Queue
	l.queue = NewQueue(
		WithQuiet(time.Duration(q.Quiet), time.Duration(q.MaxWait)),
		WithThrottle(time.Duration(q.MinInterval), q.Burst),
		WithRetry(time.Duration(cfg.Retry.Initial), time.Duration(cfg.Retry.Max)),
		WithStateFile(filepath.Join(cfg.StateDir, "throttle.json")),
		WithQueueLogger(l.log),
		WithQueueObserver(l.observeQueue),
	)
	l.lb = balance.New(l.log, l.metrics, l.simulated)
	l.commands = command.NewRunner(l.log, l.metrics, l.simulated, func() []string { return l.cfg.Load().Env.Node() })
	fopts := []install.Option{install.WithLogger(l.log), install.WithCommandRunner(l.commands.Run), install.WithOnRestore(func(path string, err error) {
		if err == nil {
			l.metrics.Restored(path)
		}
	})}
	if l.noDrift {
		fopts = append(fopts, install.WithoutWatcher())
	}
	files, err := install.New(fopts...)
	if err != nil {
		return nil, err
	}
	l.files = files
	ropts := []templates.Option{templates.WithLogger(l.log)}
	if l.fetcher != nil {
		ropts = append(ropts, templates.WithFetcher(&allowFetcher{l: l, next: l.fetcher}))
	}
	l.renderer = templates.NewRenderer(ropts...)
	copts, err := controlOptions(cfg, l.log)
	if err != nil {
		return nil, err
	}
	l.control = NewControlServer(l, l.metrics, copts...)
	return l, nil
}

// Run registers the node's instances, follows events and provisions until
// ctx is done (or the node has converged, with WithConvergedTimeout). On
// the way out it lets the running provision finish within the config's
// shutdown timeout, then deregisters the instances.
func (l *Listener) Run(ctx context.Context) error {
	cfg := l.cfg.Load()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.Control != "off" {
		addr, err := l.control.Listen(cfg.Control)
		if err != nil {
			return fmt.Errorf("%w: listen on %s: %w; set control in %s to a free address, or \"off\"", ErrControl, cfg.Control, err, cfg.File)
		}
		l.log.Info("control endpoint listening", "addr", addr.String())
		wg.Go(func() { _ = l.control.Serve(ctx) })
	}
	if l.bus != nil && cfg.Events.verifier == nil {
		l.log.Warn("bindings events are trusted unauthenticated: whoever can publish on NATS can change what this node renders; set events.public_keys in " + cfg.File + " to the resolver's public key (patchbay keygen)")
	}
	wg.Go(func() { _ = l.files.Run(ctx) })
	wg.Go(func() { l.antiEntropy(ctx) })
	if l.converged > 0 {
		wg.Go(func() { l.untilConverged(ctx, stop) })
	}
	regCtx, stopRegistrars := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRegistrars()
	s := newSupervisor()
	var registrars sync.WaitGroup
	// Subscribed before the first run reads Consul: an event published in
	// between would otherwise be lost, and with it the change until the
	// next anti-entropy check.
	l.configure(regCtx, s, cfg, &registrars)
	l.flushBus()
	queueCtx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		_ = l.queue.Run(queueCtx, l.gracefulProvision(ctx))
	}()
	l.supervise(ctx, regCtx, s, &registrars)
	// Stopping: the running provision finishes (or is aborted after the
	// shutdown timeout), then the instances are deregistered.
	stopQueue()
	<-queueDone
	stopRegistrars()
	l.teardown(s, &registrars)
	l.local.stop()
	l.forgetStatus()
	return nil
}

// flushBus waits until NATS has the subscriptions, when the bus can say
// (a *nats.Conn can); a failure only delays events to anti-entropy.
func (l *Listener) flushBus() {
	f, ok := l.bus.(interface{ FlushTimeout(time.Duration) error })
	if !ok {
		return
	}
	if err := f.FlushTimeout(5 * time.Second); err != nil {
		l.log.Debug("nats flush before the first run failed", "err", err)
	}
}

// gracefulProvision gives a run the shutdown timeout to finish once
// shutdown ctx is done, then cancels it.
func (l *Listener) gracefulProvision(shutdown context.Context) func(context.Context) error {
	return func(context.Context) error {
		ctx, cancel := context.WithCancel(context.WithoutCancel(shutdown))
		defer cancel()
		// The grace period's goroutine starts only if shutdown comes during
		// the run: a run is one goroutine start, and its wake-ups, cheaper.
		graceOver := make(chan struct{})
		stop := context.AfterFunc(shutdown, func() {
			defer close(graceOver)
			grace := time.Duration(l.cfg.Load().ShutdownTimeout)
			l.log.Info("stopping: letting the running provision finish", "deadline", grace)
			timer := time.NewTimer(grace)
			defer timer.Stop()
			select {
			case <-ctx.Done(): // the run finished
			case <-timer.C:
				l.log.Warn("stopping: the running provision did not finish in time; aborting it", "deadline", grace)
				cancel()
			}
		})
		err := l.provision(ctx)
		cancel()
		if !stop() { // started: wait for it, it ends at once now
			<-graceOver
		}
		return err
	}
}

// Reload applies a new listener.yaml: hosted services, their registrations
// and subscriptions change at once; queue and control settings need a
// restart.
func (l *Listener) Reload(cfg *Config) {
	select {
	case <-l.reloads: // an unapplied older config is superseded
	default:
	}
	l.reloads <- cfg
}

// Pause stops provision runs; triggers are remembered.
func (l *Listener) Pause() { l.queue.Pause() }

// Resume lets runs start again and queues one at once.
func (l *Listener) Resume() { l.queue.Resume() }

// Resync makes the next run read everything from Consul and queues it: for
// when events may have been lost (NATS reconnected, or dropped messages of
// a slow consumer), so a lost event costs a reconnect, not an anti-entropy
// interval.
func (l *Listener) Resync(reason string) {
	l.inputs.invalidate()
	l.queue.Trigger(reason)
}

// Alive returns nil once Run's loops, the one keeping registrations and
// subscriptions in step and the queue's, have each taken a probe; an error
// when one did not before ctx ended (Run not running, or a loop stuck).
// It is what the systemd watchdog asks before it pings: a process whose
// goroutines still run but whose loops do not is not alive.
func (l *Listener) Alive(ctx context.Context) error {
	if err := l.probes.Ask(ctx, "listener: run loop"); err != nil {
		return err
	}
	return l.queue.Alive(ctx)
}

// Provision queues a run as soon as the throttle allows.
func (l *Listener) Provision() { l.queue.Now() }

// ControlAddr is where the control endpoint listens, once Run has started
// it; "" before.
func (l *Listener) ControlAddr() string { return l.control.Addr() }

// Report is the listener's view of its node.
func (l *Listener) Report() Report {
	cfg := l.cfg.Load()
	r := Report{Node: cfg.Node, Federation: l.fed, Region: cfg.Region, Queue: *l.queueState.Load(), LastRun: l.lastRun.Load(), LocalLB: l.local.Report()}
	if t := l.lastOK.Load(); t != nil {
		r.LastSuccess = *t
	}
	owners := *l.owners.Load()
	for _, s := range cfg.Services {
		is := InstanceState{Service: s.Service}
		if o := owners[s.Service]; o != nil {
			is.ID = o.ID()
			_, is.Registered = o.Current()
		}
		r.Instances = append(r.Instances, is)
	}
	return r
}

var _ Controller = (*Listener)(nil)

func (l *Listener) observeQueue(s QueueState) {
	l.queueState.Store(&s)
	l.metrics.QueueChanged(s)
	select {
	case l.activity <- struct{}{}:
	default:
	}
}

// untilConverged calls stop once the queue has been idle for the converged
// timeout after at least one run.
func (l *Listener) untilConverged(ctx context.Context, stop context.CancelFunc) {
	timer := time.NewTimer(l.converged)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.activity:
			timer.Reset(l.converged)
		case <-timer.C:
			s := l.queueState.Load()
			if l.lastRun.Load() != nil && !s.Pending && !s.Running && s.RetryAt.IsZero() {
				l.log.Info("converged: no change for the converged timeout; exiting", "timeout", l.converged)
				stop()
				return
			}
			timer.Reset(l.converged)
		}
	}
}

// antiEntropy compares, every interval (jittered so that nodes spread
// their reads), what the last run read and what the listener holds with
// what Consul holds now, and triggers a run when they differ: a lost event
// costs at most an interval, and so does a forged one (Consul wins).
func (l *Listener) antiEntropy(ctx context.Context) {
	for {
		every := time.Duration(l.cfg.Load().AntiEntropy)
		jittered := every - every/5 + rand.N(every/5*2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jittered):
		}
		cfg, start := l.cfg.Load(), l.inputs.readStart()
		hosted, err := l.reg.ReadNode(ctx, l.fed, cfg.serviceNames(), cfg.Region)
		if err != nil {
			l.log.Warn("anti-entropy check failed", "err", err)
			continue
		}
		reason, err := l.drifted(ctx, hosted, start)
		if err != nil {
			l.log.Warn("anti-entropy check failed", "err", err)
		} else if reason != "" {
			l.log.Info("anti-entropy: Consul differs from the last run", "reason", reason)
			// What was just read is what the run needs: holding it, rather
			// than marking the inputs stale, saves the run a read, and the
			// change's own event, when it comes late, is seen as held
			// instead of queuing a second run.
			l.inputs.fromConsul(hosted, start, sourceAntiEntropy)
			l.queue.Trigger("anti-entropy: " + reason)
		}
	}
}

// drifted says what differs between hosted, as Consul holds it now in a
// read that began at start, and the last run or what the listener holds;
// "" if nothing.
func (l *Listener) drifted(ctx context.Context, hosted []registry.HostedService, start uint64) (string, error) {
	seen := *l.seen.Load()
	for _, h := range hosted {
		now := inputsOf(h)
		was, ok := seen[h.Service]
		switch {
		case !ok:
			return h.Service + " not provisioned yet", nil
		case (now.bindingIndex != was.bindingIndex || now.manifestIndex != was.manifestIndex) && !l.inputs.holds(h):
			// An event brought it in already when the listener holds it: its
			// run is queued or done, and triggering again would only repeat it.
			return fmt.Sprintf("%s binding or manifest changed", h.Service), nil
		case l.inputs.disputes(h, start):
			// The last run read Consul's indexes, but what the listener
			// holds is not Consul's: an event Consul does not confirm (a
			// forged one can copy the modify index, not the content).
			return fmt.Sprintf("%s binding held is not Consul's", h.Service), nil
		case was.halted != "":
			g, err := l.reg.Rollout(l.fed, was.halted)
			if err != nil {
				return "", err
			}
			if h, err := g.Halted(ctx); err == nil && h == nil {
				return "rollout group " + was.halted + " resumed", nil
			}
		}
	}
	return "", nil
}

func inputsOf(h registry.HostedService) seenInputs {
	s := seenInputs{manifestIndex: h.ManifestIndex}
	if h.Binding != nil {
		s.bindingIndex, s.region = h.Binding.ModifyIndex, h.Binding.Region
	}
	return s
}

func (c *Config) serviceNames() []string {
	names := make([]string, len(c.Services))
	for i, s := range c.Services {
		names[i] = s.Service
	}
	return names
}

// destination is where a template's file goes on this node: beneath
// root, the destination cleaned alone first, so that ".." cannot climb
// out of root (allow refuses such a destination before this).
func (c *Config) destination(dest string) string {
	dest = filepath.Clean("/" + dest)
	if c.Root == "" || c.Root == "/" {
		return dest
	}
	return filepath.Join(c.Root, dest)
}

// addrOf is the address an instance of s registers with.
func (c *Config) addrOf(s ServiceConfig) string {
	if s.Address != "" {
		return s.Address
	}
	return c.Address
}

// Once runs one provision without registering, subscribing or queueing,
// and returns its report: for bootstrapping a host and for scripts. The
// report's result says whether everything applied.
func (l *Listener) Once(ctx context.Context) (*RunReport, error) {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	defer l.local.stop()                   // --once leaves no process behind
	wg.Go(func() { _ = l.files.Run(ctx) }) // Files owns a watcher that Run closes
	err := l.provision(ctx)
	return l.lastRun.Load(), err
}

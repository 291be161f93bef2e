// Package bench measures patchbay's listener fleet side by side with
// consul-template on one Consul: N `patchbay listen` processes and N
// consul-template processes render the providers of one service into their
// own files, each fleet reaching Consul through its own counting reverse
// proxy, while the harness registers providers and watches the files. It
// drives the binaries `make build` and `make bin/consul-template` made, so
// it measures whatever code is built. A fleet simulation runs thousands of
// listeners in this process.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/patchbay/patchbay/registry"
)

// Config says what to run. Zero sizes and durations skip a scenario.
type Config struct {
	Patchbay, ConsulTemplate, Consul string // binaries
	// Floor is cmd/floor's binary, for the cost row (CostChanges).
	Floor string
	// NATSServer is the nats-server binary run for the harness, so that
	// its CPU can be read; "" embeds a server in the harness.
	NATSServer string

	ConsulAddr string // an agent to use; "" starts `Consul agent -dev`
	NATSURL    string // a server to use; "" embeds one
	Dir        string // work directory; "" makes a temporary one, removed at the end

	Sizes     []int         // N of "one new provider"
	PeriodicN int           // N of "one change every Interval"
	Interval  time.Duration // between the periodic changes
	Duration  time.Duration // of the periodic changes
	IdleN     int
	Idle      time.Duration
	BurstN    int // consumers per fleet in the burst
	Burst     int // registrations in the burst
	// InstancesN is N of the `patchbay register` scenarios (instances.go):
	// Instances processes one every Interval, then RegisterBurst at once.
	InstancesN    int
	Instances     int
	RegisterBurst int

	// Settle is how long files must be unchanged before a scenario starts
	// (default 2s).
	Settle time.Duration

	// CostChanges is how many changes the cost row measures, one consumer
	// of each kind and the floor consumer alone (cost.go); 0 skips it.
	CostChanges int

	SimSizes []int  // listeners of the in-process fleet simulation
	Fanout   []int  // watchers of the fan-out scenario (fanout.go)
	SimDir   string // where simulated listeners render ("" = Dir)

	Progress io.Writer // what the harness is doing; nil discards
}

// env is one run's shared state.
type env struct {
	cfg        Config
	dir        string
	consulAddr string
	natsURL    string
	ctTemplate string // consul-template's template file
	obs        *observer
	proxies    map[kind]*Proxy
	providers  []*target         // the line of every provider registered so far
	reg        *registry.Client  // directly to Consul, for the providers
	ownerCtx   context.Context   // of the providers' owners
	owners     []*registry.Owner // one per provider
	resolver   *proc
	consul     *proc  // nil when Config.ConsulAddr names another
	nats       *proc  // nil when embedded or Config.NATSURL names another
	eventKey   string // the public key the resolver signs events with
	seq        int
	progress   io.Writer
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// Run runs the scenarios of cfg and returns their figures. Everything it
// starts is stopped, and a temporary directory removed, before it returns.
func Run(ctx context.Context, cfg Config) (res *Results, err error) {
	// Children run in directories of their own: relative paths would not
	// find the binaries.
	for _, p := range []*string{&cfg.Patchbay, &cfg.ConsulTemplate, &cfg.Consul, &cfg.NATSServer, &cfg.Floor} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	e := &env{cfg: cfg, dir: cfg.Dir, progress: cfg.Progress, proxies: map[kind]*Proxy{}}
	if e.progress == nil {
		e.progress = io.Discard
	}
	if e.cfg.Settle <= 0 {
		e.cfg.Settle = 2 * time.Second
	}
	if e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "patchbay-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer func() { _ = os.RemoveAll(e.dir) }() // a temporary directory; the OS cleans up what is left
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, err := e.setup(ctx)
	defer stop()
	if err != nil {
		return nil, err
	}
	res = &Results{Started: time.Now().UTC()}
	if cfg.CostChanges > 0 {
		if res.Cost, err = e.costPerChange(ctx, cfg.CostChanges); err != nil {
			return res, err
		}
	}
	for _, n := range e.phases() {
		if err := e.phase(ctx, n, res); err != nil {
			return res, err
		}
	}
	for _, n := range cfg.SimSizes {
		r, err := e.simulate(ctx, n)
		if err != nil {
			return res, err
		}
		res.Sim = append(res.Sim, *r)
	}
	for _, n := range cfg.Fanout {
		r, err := e.fanout(ctx, n)
		if err != nil {
			return res, err
		}
		res.Fanout = append(res.Fanout, *r)
	}
	res.Elapsed = time.Since(res.Started).Round(time.Second).String()
	return res, nil
}

// setup starts Consul, NATS, the proxies, the observer and the resolver,
// publishes the manifests and registers the first provider. stop undoes
// what was done, even after an error.
func (e *env) setup(ctx context.Context) (stop func(), err error) {
	var undo []func()
	stop = func() {
		for _, f := range slices.Backward(undo) {
			f()
		}
	}
	for _, d := range []string{"logs"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			return stop, fmt.Errorf("bench: %w", err)
		}
	}
	if e.consulAddr = e.cfg.ConsulAddr; e.consulAddr == "" {
		e.logf("starting Consul (%s)", e.cfg.Consul)
		p, addr, err := startConsul(ctx, e.cfg.Consul, e.dir)
		if err != nil {
			return stop, err
		}
		e.consulAddr, e.consul = addr, p
		undo = append(undo, func() { p.stop(10 * time.Second) })
	}
	if e.natsURL = e.cfg.NATSURL; e.natsURL == "" && e.cfg.NATSServer != "" {
		p, url, err := startNATSProc(ctx, e.cfg.NATSServer, e.dir)
		if err != nil {
			return stop, err
		}
		e.natsURL, e.nats = url, p
		undo = append(undo, func() { p.stop(10 * time.Second) })
	} else if e.natsURL == "" {
		ns, err := startNATS()
		if err != nil {
			return stop, err
		}
		e.natsURL = ns.ClientURL()
		undo = append(undo, func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	for _, k := range []kind{consulTemplate, consulTemplateWait, patchbay, simulated} {
		p, err := StartProxy(k.String(), e.consulAddr)
		if err != nil {
			return stop, err
		}
		e.proxies[k] = p
		undo = append(undo, func() { _ = p.Close() })
	}
	stopObs, err := e.startObserver(ctx)
	if err != nil {
		return stop, err
	}
	undo = append(undo, stopObs)
	stopOwners, err := e.startOwners(ctx)
	if err != nil {
		return stop, err
	}
	undo = append(undo, stopOwners)
	e.ctTemplate = filepath.Join(e.dir, "upstreams.ctmpl")
	if err := os.WriteFile(e.ctTemplate, []byte(consulTemplateSource), 0o644); err != nil {
		return stop, fmt.Errorf("bench: %w", err)
	}
	if err := e.publish(ctx); err != nil {
		return stop, err
	}
	seedFile, err := e.signingKey()
	if err != nil {
		return stop, err
	}
	resolver, err := startProc("resolver", e.dir, filepath.Join(e.dir, "logs", "resolver.log"), []string{registry.SharedAgentsEnv + "=" + agentNode},
		e.cfg.Patchbay, "resolver", "--consul-addr", e.proxies[patchbay].Addr, "--nats-url", e.natsURL, "--name", "bench", "--signing-key-file", seedFile)
	if err != nil {
		return stop, err
	}
	e.resolver = resolver
	undo = append(undo, func() { resolver.stop(10 * time.Second) })
	if _, err := e.register(ctx); err != nil {
		return stop, err
	}
	return stop, nil
}

// startObserver starts following files until stop.
func (e *env) startObserver(ctx context.Context) (stop func(), err error) {
	if e.obs, err = newObserver(); err != nil {
		return nil, err
	}
	obsCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { // owned here: stop cancels and waits
		defer close(done)
		_ = e.obs.run(obsCtx)
	}()
	return func() { cancel(); <-done }, nil
}

// startOwners makes the Consul client of the providers' owners; stop
// deregisters every provider.
func (e *env) startOwners(ctx context.Context) (stop func(), err error) {
	ownerLog, err := os.Create(filepath.Join(e.dir, "logs", "providers.log"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	log := slog.New(slog.NewTextHandler(ownerLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if e.reg, err = registry.New(registry.WithAddress(e.consulAddr), registry.WithLogger(log), registry.WithSharedAgentNodes(agentNode)); err != nil {
		_ = ownerLog.Close() // the error returned says more than a failed close of an unused log
		return nil, err
	}
	var cancel context.CancelFunc
	e.ownerCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	return func() { e.closeOwners(); cancel(); _ = ownerLog.Close() }, nil // warnings only; a lost tail does not change the figures
}

// phases are the fleet sizes to start, each once, smallest first.
func (e *env) phases() []int {
	var ns []int
	for _, n := range append(slices.Clone(e.cfg.Sizes), e.cfg.PeriodicN, e.cfg.IdleN, e.cfg.BurstN, e.cfg.InstancesN) {
		if n > 0 && !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

// phase starts a fresh fleet of each kind with n consumers and runs the
// scenarios of that size.
func (e *env) phase(ctx context.Context, n int, res *Results) error {
	tag := fmt.Sprintf("n%d", n)
	e.logf("N=%d: starting %d consul-template and %d patchbay listen processes", n, n, n)
	fleets := map[kind]*fleet{}
	defer func() {
		for _, f := range fleets {
			start := time.Now()
			if killed := f.stop(); killed > 0 {
				e.logf("N=%d: %d of %d %s processes needed SIGKILL after %s", n, killed, len(f.files), f.kind, time.Since(start).Round(time.Millisecond))
			}
			e.obs.forget(f.files)
		}
	}()
	for _, k := range []kind{consulTemplate, patchbay} {
		f, err := e.startFleet(ctx, k, n, tag)
		if err != nil {
			return err
		}
		fleets[k] = f
	}
	if err := e.settle(ctx, fleets); err != nil {
		return err
	}
	if slices.Contains(e.cfg.Sizes, n) {
		r, err := e.oneProvider(ctx, n, fleets)
		if err != nil {
			return err
		}
		res.One = append(res.One, *r)
	}
	if len(e.cfg.Sizes) > 0 && n == slices.Max(e.cfg.Sizes) {
		r, err := e.oneProviderAlone(ctx, n, fleets)
		if err != nil {
			return err
		}
		res.Alone = r
	}
	if n == e.cfg.PeriodicN && e.cfg.Interval > 0 && e.cfg.Duration > 0 {
		r, err := e.periodic(ctx, n, fleets)
		if err != nil {
			return err
		}
		res.Periodic = r
	}
	if n == e.cfg.IdleN && e.cfg.Idle > 0 {
		r, err := e.idle(ctx, n, fleets)
		if err != nil {
			return err
		}
		res.Idle = r
	}
	if err := e.registerScenarios(ctx, n, fleets, tag, res); err != nil {
		return err
	}
	if n == e.cfg.BurstN && e.cfg.Burst > 0 {
		r, err := e.burst(ctx, n, fleets, tag)
		if err != nil {
			return err
		}
		res.Burst = r
	}
	return nil
}

// registerScenarios runs the `patchbay register` scenarios at their N.
func (e *env) registerScenarios(ctx context.Context, n int, fleets map[kind]*fleet, tag string, res *Results) error {
	if n != e.cfg.InstancesN {
		return nil
	}
	if e.cfg.Instances > 0 && e.cfg.Interval > 0 {
		r, err := e.newInstances(ctx, n, fleets, tag)
		if err != nil {
			return err
		}
		res.Instances = r
		if r, err = e.newInstancesAlone(ctx, n, fleets, tag); err != nil {
			return err
		}
		res.InstancesAlone = r
	}
	if e.cfg.RegisterBurst > 0 {
		r, err := e.registerBurst(ctx, n, fleets, tag)
		if err != nil {
			return err
		}
		res.RegisterBurst = r
	}
	return nil
}

// settle waits until no file of the fleets has changed for Settle.
func (e *env) settle(ctx context.Context, fleets map[kind]*fleet) error {
	var files []string
	for _, f := range fleets {
		files = append(files, f.files...)
	}
	if err := e.quiet(ctx, files, e.cfg.Settle, time.Minute); err != nil && !errors.Is(err, errTimeout) {
		return err
	}
	return nil
}

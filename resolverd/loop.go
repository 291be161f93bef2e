// Package resolverd is the resolver daemon, the leader-elected loop: the
// I/O around the pure engine in package resolver. It lives beside the
// listener, not under resolver/, because it imports the registry and NATS,
// which the engine must not: resolver/daemon made resolver → registry →
// resolver one cycle of rooms. It campaigns for the resolver lock in
// Consul, reads snapshots, resolves them, writes the bindings that changed,
// announces them on NATS and serves the loop's metrics.
package resolverd

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/alive"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// Registry is what the loop needs of Consul.
type Registry interface {
	Campaign(ctx context.Context, name, holder string) (*registry.Candidate, error)
	Snapshot(ctx context.Context) (*binding.Snapshot, error)
	Watch(ctx context.Context, index uint64) (uint64, error)
	Bindings(ctx context.Context) ([]registry.StoredBinding, []binding.SkippedKey, uint64, error)
	WatchBindings(ctx context.Context, index uint64) (uint64, error)
	WriteBindings(ctx context.Context, writes []registry.BindingWrite) ([]uint64, error)
}

var _ Registry = (*registry.Client)(nil)

// Publisher announces events; *nats.Conn is one. Messages, not bodies:
// a signed event carries its signature in headers.
type Publisher interface {
	PublishMsg(m *nats.Msg) error
}

// Loop is the resolver daemon. Several may run: one leads, through a
// Consul lock, and the others stand by. The leader holds two blocking
// queries whatever the fleet size (the registry's inputs, and the bindings
// so that one written by hand is rewritten at once), resolves, writes every
// binding that changed in one transaction (check-and-set, revision + 1) and
// announces each on NATS with its content.
//
// The loop is the system's one debounce: an isolated change is resolved at
// once (leading edge); changes within the quiet window of a pass wait until
// they have been quiet that long, at most the maximum wait.
type Loop struct {
	reg    Registry
	pub    Publisher
	signer *events.Signer // nil: events go unsigned
	holder string
	quiet  time.Duration
	max    time.Duration
	log    *slog.Logger
	// onApplied, when set, hears of every pass (tests, metrics).
	onApplied func(Pass)
	// onLeading, when set, hears when leadership starts and ends (metrics).
	onLeading func(bool)
	// probes are taken by the loop's waits only (see Alive); unbuffered.
	probes *alive.Probe
}

// Pass describes one resolve-and-write pass.
type Pass struct {
	Index             uint64 // Consul index of the snapshot
	Bindings, Written int
	Deleted           int
	Duration          time.Duration
	// Since is when the leader first saw the registry change this pass
	// resolves; zero for the first pass of a term or one caused by a
	// binding written by someone else.
	Since time.Time
}

// LoopOption configures a Loop.
type LoopOption func(*Loop)

// Defaults of the debounce, the system's one: listeners apply each event
// at once.
const (
	// DefaultQuiet: after a pass, further changes wait until the registry
	// has been unchanged this long; an isolated change is resolved at once.
	DefaultQuiet = time.Second
	// DefaultMaxWait: the most a burst of changes defers a resolve.
	DefaultMaxWait = 10 * time.Second
)

// WithDebounce sets the quiet window (after a pass, further changes wait
// until the registry has been unchanged this long) and the most such a
// burst can defer a resolve. Defaults: DefaultQuiet and DefaultMaxWait.
func WithDebounce(quiet, maxWait time.Duration) LoopOption {
	return func(l *Loop) { l.quiet, l.max = quiet, maxWait }
}

// WithHolder names this process in the leader lock (default "resolver").
func WithHolder(name string) LoopOption { return func(l *Loop) { l.holder = name } }

// WithLogger sets the logger.
func WithLogger(log *slog.Logger) LoopOption { return func(l *Loop) { l.log = log } }

// WithSigner signs every bindings event with s; listeners that trust its
// public key apply no event without a valid signature. Without it events
// are published unsigned.
func WithSigner(s *events.Signer) LoopOption { return func(l *Loop) { l.signer = s } }

// WithPassHook calls fn after every pass.
func WithPassHook(fn func(Pass)) LoopOption { return func(l *Loop) { l.onApplied = fn } }

// NewLoop returns a resolver loop.
func NewLoop(reg Registry, pub Publisher, opts ...LoopOption) *Loop {
	l := &Loop{reg: reg, pub: pub, holder: "resolver", quiet: DefaultQuiet, max: DefaultMaxWait, log: slog.Default(), probes: alive.New()}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// retryBackoff is how the loop waits between attempts against Consul: short,
// because a Consul election lasts seconds and the loop must resume as soon
// as Consul accepts requests again.
func retryBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, time.Second, 0
	b.Reset()
	return b
}

// Run resolves while it leads and stands by otherwise, until ctx ends.
// Failures (Consul or NATS down, leadership lost) are retried with backoff;
// a permission Consul refuses ends it with that error.
func (l *Loop) Run(ctx context.Context) error {
	var cand *registry.Candidate
	err := l.retry(ctx, "join the leader election", func() error {
		var err error
		cand, err = l.reg.Campaign(ctx, "resolver", l.holder)
		return err
	})
	if err != nil || cand == nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := cand.Close(cctx); err != nil {
			l.log.Warn("leaving the leader election failed; a standby takes over once the leader check lapses", "err", err)
		}
	}()
	b := retryBackoff()
	for ctx.Err() == nil {
		err := l.leadOnce(ctx, cand, b.Reset)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, registry.ErrPermissionDenied):
			return err
		}
		wait := b.NextBackOff()
		l.log.Warn("resolver not leading; retrying", "err", err, "retry_in", wait)
		l.sleep(ctx, wait)
	}
	return nil
}

// Alive returns nil once the loop has taken a probe, or an error when it
// did not before ctx ended: Run is not running, or it is stuck in a pass
// (a Consul request that never returns). The loop takes probes wherever it
// waits: for a change while leading, for leadership while standing by, and
// between retries; so an outage it is riding out is not taken for a wedge.
// It is what the systemd watchdog asks before it pings.
func (l *Loop) Alive(ctx context.Context) error {
	return l.probes.Ask(ctx, "resolver: loop")
}

// sleep waits for d or the end of ctx, taking probes meanwhile.
func (l *Loop) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-l.probes.C():
		}
	}
}

// retry runs op until it succeeds, ctx ends (nil) or Consul refuses a
// permission (that error).
// Its waits take probes (see Alive), which backoff.Retry's could not.
func (l *Loop) retry(ctx context.Context, what string, op func() error) error {
	b := retryBackoff()
	for {
		err := op()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil, errors.Is(err, registry.ErrPermissionDenied):
			return err
		}
		wait := b.NextBackOff()
		l.log.Warn("resolver cannot "+what+"; retrying", "err", err, "retry_in", wait)
		l.sleep(ctx, wait)
	}
}

// acquire waits for leadership, taking probes meanwhile: standing by is a
// standby's idle wait.
func (l *Loop) acquire(ctx context.Context, cand *registry.Candidate) (*registry.Leadership, error) {
	type acquired struct {
		lead *registry.Leadership
		err  error
	}
	done := make(chan acquired, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		lead, err := cand.Acquire(ctx)
		done <- acquired{lead, err}
	})
	for {
		select {
		case a := <-done:
			return a.lead, a.err
		case <-l.probes.C():
		}
	}
}

// leadOnce waits for leadership and resolves until it is lost.
func (l *Loop) leadOnce(ctx context.Context, cand *registry.Candidate, leading func()) error {
	l.log.Info("resolver standing by for leadership", "holder", l.holder)
	lead, err := l.acquire(ctx, cand)
	if err != nil {
		return err
	}
	defer func() { _ = lead.Release() }()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: deferred calls run last first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		select {
		case <-lead.Lost:
			l.log.Warn("resolver leadership lost")
			cancel()
		case <-ctx.Done():
		}
	})
	l.log.Info("resolver leading", "holder", l.holder)
	if l.onLeading != nil {
		l.onLeading(true)
		defer l.onLeading(false)
	}
	leading()
	err = l.lead(ctx)
	if errors.Is(err, registry.ErrPermissionDenied) {
		return err
	}
	select {
	case <-lead.Lost:
		return errors.New("resolver: leadership lost")
	default:
		return err
	}
}

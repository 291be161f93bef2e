// Package listener is the daemon on every host: it turns binding changes
// into provision runs that render and install the host's files.
package listener

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/renameio/v2"
	"github.com/patchbay/patchbay/internal/debounce"
	"golang.org/x/time/rate"

	"github.com/patchbay/patchbay/internal/alive"
)

// Defaults of the queue; listener.yaml's queue section defaults to them.
const (
	// DefaultQuiet is the short window: a trigger that comes during a run
	// or less than this after one waits until triggers have been quiet this
	// long; a trigger after a longer calm starts a run at once. It is short
	// because the resolver is the system's debounce: its events of one
	// burst come at least its quiet window apart.
	DefaultQuiet = 100 * time.Millisecond
	// DefaultMaxWait caps that wait, so a never-ending stream of triggers
	// still gets a run this often.
	DefaultMaxWait = 10 * time.Second
	// DefaultMinInterval and DefaultBurst size the stampede guard: guarded
	// runs (see Queue) start DefaultBurst back to back, then one per
	// DefaultMinInterval.
	DefaultMinInterval = 30 * time.Second
	DefaultBurst       = 3
)

// Queue coalesces triggers into provision runs: at most one runs and one
// waits, whatever the number of triggers. One goroutine, Run's, owns all of
// its state; the other methods only send to it.
//
// Latency and reload storms are not traded against each other:
//   - Leading edge: a trigger that finds the queue idle, with no run ended
//     within the quiet window, starts a run at once.
//   - Coalescing: triggers during a run or within the quiet window after it
//     become one more run, once triggers have been quiet for the quiet
//     window (at the latest max-wait after the first of them), and never
//     before the running one ended. A burst gives at most two runs.
//   - Stampede guard: the throttle (a token bucket, persisted) applies only
//     to guarded runs: the first run of a process and every run after a
//     failed one. Those are the runs of a restart loop and of a failure
//     loop; a healthy stream of changes after a success already has its
//     rate bounded by coalescing (one run per run time plus quiet window),
//     so holding it for the throttle's interval would only add latency.
//     Charging only guarded runs also keeps the fsync of the state file off
//     the healthy path.
type Queue struct {
	quiet, maxWait time.Duration
	minInterval    time.Duration
	burst          int
	stateFile      string // "" keeps the throttle in memory only
	log            *slog.Logger
	observe        func(QueueState)
	retryInitial   time.Duration
	retryMax       time.Duration

	triggers chan string
	control  chan control
	probes   *alive.Probe // taken only by Run's select
}

type control int

const (
	pause control = iota
	resume
	now // a run as soon as the throttle allows, skipping the quiet window
)

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// WithQuiet sets the quiet window and the maximum wait (defaults
// DefaultQuiet, DefaultMaxWait).
func WithQuiet(quiet, maxWait time.Duration) QueueOption {
	return func(q *Queue) { q.quiet, q.maxWait = quiet, maxWait }
}

// WithThrottle lets burst guarded runs (the first after a start, any after
// a failure) start back to back, then one per minInterval (defaults
// DefaultMinInterval, DefaultBurst).
func WithThrottle(minInterval time.Duration, burst int) QueueOption {
	return func(q *Queue) { q.minInterval, q.burst = minInterval, burst }
}

// WithStateFile persists the throttle in path, so a restart cannot be used
// to run faster than the throttle allows.
func WithStateFile(path string) QueueOption { return func(q *Queue) { q.stateFile = path } }

// WithQueueLogger sets the logger (default slog.Default()).
func WithQueueLogger(l *slog.Logger) QueueOption { return func(q *Queue) { q.log = l } }

// WithQueueObserver has fn called with the queue's state after every
// change, from Run's goroutine: fn must not block.
func WithQueueObserver(fn func(QueueState)) QueueOption {
	return func(q *Queue) { q.observe = fn }
}

// WithRetry retries a failed run after a capped exponential backoff
// (defaults 5s, 5m); a successful run resets it. Triggers still start runs
// earlier, within the throttle.
func WithRetry(initial, maxInterval time.Duration) QueueOption {
	return func(q *Queue) { q.retryInitial, q.retryMax = initial, maxInterval }
}

// NewQueue returns a queue; Run starts it.
func NewQueue(opts ...QueueOption) *Queue {
	q := &Queue{
		quiet: DefaultQuiet, maxWait: DefaultMaxWait, minInterval: DefaultMinInterval, burst: DefaultBurst,
		log: slog.Default(), triggers: make(chan string, 64), control: make(chan control, 8), probes: alive.New(),
		observe: func(QueueState) {}, retryInitial: DefaultRetryInitial, retryMax: DefaultRetryMax,
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

// Trigger asks for a run. It never blocks: when the buffer is full, a run
// is already pending and the trigger is absorbed.
func (q *Queue) Trigger(reason string) {
	select {
	case q.triggers <- reason:
	default:
	}
}

// Pause stops runs from starting; triggers are remembered.
func (q *Queue) Pause() { q.send(pause) }

// Resume lets runs start again and asks for one at once: what changed
// while paused is unknown.
func (q *Queue) Resume() { q.send(resume) }

// Now asks for a run as soon as the throttle allows.
func (q *Queue) Now() { q.send(now) }

// send never blocks: Run drains the buffer at once while it runs, so it is
// full only when Run is not running, and a caller (an HTTP handler) must
// not hang then.
func (q *Queue) send(c control) {
	select {
	case q.control <- c:
	default:
		q.log.Warn("queue not running; control request dropped")
	}
}

// Alive returns nil once Run's loop has taken a probe, or an error when it
// did not before ctx ended: Run is not running, or it is stuck outside its
// wait. A provision in progress does not delay the answer; it runs on a
// goroutine of its own.
func (q *Queue) Alive(ctx context.Context) error {
	return q.probes.Ask(ctx, "listener: queue loop")
}

// queueState is what Run's goroutine owns.
type queueState struct {
	pending     bool
	first, last time.Time // oldest and newest waiting trigger
	skipQuiet   bool
	running     bool
	paused      bool
	lastEnd     time.Time // when the last run ended; zero before the first
	guarded     bool      // the next run needs a throttle token
	heldLogged  bool      // the pending run's hold by the throttle was logged
	coalesced   int       // triggers absorbed into the pending run
	totalMerged uint64    // triggers absorbed since start
	limiter     *rate.Limiter
	retry       *backoff.ExponentialBackOff
	retryAt     time.Time // zero: no retry due
}

func (st *queueState) public() QueueState {
	return QueueState{Pending: st.pending, Running: st.running, Paused: st.paused, Coalesced: st.totalMerged, RetryAt: st.retryAt}
}

// Run runs provisions until ctx is done, then waits for the running one.
// Starting queues a run at once, guarded: a restart loop is a loop the
// throttle must see.
func (q *Queue) Run(ctx context.Context, provision func(context.Context) error) error {
	st := &queueState{limiter: rate.NewLimiter(rate.Every(q.minInterval), q.burst), retry: backoff.NewExponentialBackOff()}
	st.retry.InitialInterval, st.retry.MaxInterval, st.retry.MaxElapsedTime = q.retryInitial, q.retryMax, 0
	st.retry.Reset() // NewExponentialBackOff started from its own default interval
	if err := q.restore(st, time.Now()); err != nil {
		return err
	}
	start := time.Now()
	st.pending, st.skipQuiet, st.guarded, st.first, st.last = true, true, true, start, start
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		q.noteHeld(st, time.Now())
		// A run that is due starts here, in the iteration that made it
		// due: waiting for a zero timer cost every change one more wake-up
		// of this goroutine.
		if ctx.Err() == nil && q.ready(st, time.Now()) {
			q.start(st, time.Now())
			wg.Go(func() { done <- provision(ctx) }) // buffered: never blocks
			q.observe(st.public())
		}
		timer := time.NewTimer(q.wait(st, time.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case reason := <-q.triggers:
			q.add(st, reason, time.Now())
		case c := <-q.control:
			q.apply(st, c, time.Now())
		case <-q.probes.C():
			timer.Stop()
			continue // nothing changed: no observer call, which is activity to the converged timeout
		case err := <-done:
			q.finished(st, err, time.Now())
		case <-timer.C:
			q.retryIfDue(st, time.Now()) // a due run starts at the top
		}
		timer.Stop()
		q.observe(st.public())
	}
}

// finished schedules a retry after a failed run and guards the next run;
// success resets the backoff and lifts the guard.
func (q *Queue) finished(st *queueState, err error, t time.Time) {
	st.running, st.lastEnd, st.guarded = false, t, err != nil
	if err == nil {
		st.retry.Reset()
		st.retryAt = time.Time{}
		return
	}
	wait := st.retry.NextBackOff()
	st.retryAt = t.Add(wait)
	q.log.Warn("provision failed; retrying", "err", err, "retry_in", wait)
}

// retryIfDue turns a due retry into a pending run.
func (q *Queue) retryIfDue(st *queueState, t time.Time) {
	if st.retryAt.IsZero() || t.Before(st.retryAt) || st.running {
		return
	}
	st.retryAt = time.Time{}
	q.add(st, "retry after a failed run", t)
	st.skipQuiet = true // the backoff was the wait
}

// add records a trigger. One that finds the queue idle after a calm of at
// least the quiet window is the leading edge of a change: it runs at once.
func (q *Queue) add(st *queueState, reason string, t time.Time) {
	switch {
	case st.pending:
		st.coalesced++
		st.totalMerged++
	default:
		st.pending, st.first = true, t
		st.skipQuiet = !st.running && t.Sub(st.lastEnd) >= q.quiet
	}
	st.last = t
	q.log.Debug("provision triggered", "reason", reason, "coalesced", st.coalesced, "at_once", st.skipQuiet)
}

func (q *Queue) apply(st *queueState, c control, t time.Time) {
	switch c {
	case pause:
		st.paused = true
	case resume:
		st.paused = false
		fallthrough
	case now:
		if !st.pending {
			st.pending, st.first, st.last = true, t, t
		}
		st.skipQuiet = true
	}
}

// wait is how long until a run may start; a long wait when none can.
func (q *Queue) wait(st *queueState, t time.Time) time.Duration {
	if st.running || st.paused {
		return time.Hour // nothing to do until a message arrives
	}
	if !st.pending {
		if !st.retryAt.IsZero() {
			return max(st.retryAt.Sub(t), 0)
		}
		return time.Hour
	}
	due := debounce.Window{Quiet: q.quiet, Max: q.maxWait}.Due(st.first, st.last)
	if st.skipQuiet {
		due = t
	}
	return max(due.Sub(t), q.throttled(st, t), 0)
}

// throttled is how long the guard holds the pending run: only a guarded
// run waits for a token.
func (q *Queue) throttled(st *queueState, t time.Time) time.Duration {
	if !st.guarded {
		return 0
	}
	r := st.limiter.ReserveN(t, 1)
	defer r.CancelAt(t)
	if !r.OK() { // a burst below 1: never, say so rather than spin
		return time.Hour
	}
	return r.DelayFrom(t)
}

// noteHeld says once per run why a pending run waits longer than its
// quiet window: a listener that provisions nothing for a while after a
// restart must not look stuck.
func (q *Queue) noteHeld(st *queueState, t time.Time) {
	if !st.pending || st.running || st.paused || st.heldLogged {
		return
	}
	if d := q.throttled(st, t); d > 0 {
		st.heldLogged = true
		q.log.Info("provision held by the throttle: too many runs after starts or failures", "for", d.Round(time.Second))
	}
}

func (q *Queue) ready(st *queueState, t time.Time) bool {
	return q.wait(st, t) == 0
}

// start marks the pending run as running; a guarded run takes its token and
// persists the throttle before the provision begins, so a kill -9 during
// the run cannot hand the token back.
func (q *Queue) start(st *queueState, t time.Time) {
	st.pending, st.skipQuiet, st.running, st.coalesced, st.heldLogged = false, false, true, 0, false
	st.first, st.last = time.Time{}, time.Time{}
	if !st.guarded {
		return
	}
	st.limiter.AllowN(t, 1)
	if err := q.persist(snapshot(st.limiter, t)); err != nil {
		q.log.Warn("cannot persist the throttle; a restart may run sooner than it allows", "err", err)
	}
}

// throttleState is the state file's content: the token bucket itself, so a
// restart resumes it exactly. Start times alone cannot: the bucket's level
// depends on every start before them, and assuming it was full before the
// oldest kept one let a restart loop through faster than the throttle.
type throttleState struct {
	// Tokens is how many guarded runs could have started back to back At.
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
	// RecentStarts is the format before tokens; read only, to upgrade.
	RecentStarts []time.Time `json:"recent_starts,omitempty"`
}

func snapshot(lim *rate.Limiter, t time.Time) throttleState {
	return throttleState{Tokens: lim.TokensAt(t), At: t.Round(0)}
}

// restore rebuilds the limiter from the state file, in the past where it
// was written: it then refills for the time the process was down, and not
// a token more.
func (q *Queue) restore(st *queueState, now time.Time) error {
	if q.stateFile == "" {
		return nil
	}
	b, err := os.ReadFile(q.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listener: read throttle state: %w", err)
	}
	var s throttleState
	if err := json.Unmarshal(b, &s); err != nil {
		// An empty bucket: a torn or hand-edited file must not open the gate.
		q.log.Warn("unreadable throttle state; starting with an empty throttle", "file", q.stateFile, "err", err)
		s = throttleState{At: now}
	}
	if s.At.IsZero() && len(s.RecentStarts) > 0 {
		// The old format kept no level: assume the bucket was empty at the
		// newest start, never fuller than it was.
		s.At = slices.MaxFunc(s.RecentStarts, time.Time.Compare)
	}
	if !s.At.IsZero() {
		setTokens(st.limiter, s.Tokens, s.At)
	}
	return nil
}

// setTokens puts lim at tokens at time at. rate.Limiter has no setter, but
// a fresh limiter is full at any time: taking the whole tokens missing at a
// moment chosen so that the refill until at adds the fraction lands exactly
// on tokens.
func setTokens(lim *rate.Limiter, tokens float64, at time.Time) {
	burst := lim.Burst()
	tokens = min(max(tokens, 0), float64(burst))
	whole := math.Floor(tokens)
	if lim.Limit() == rate.Inf || whole >= float64(burst) {
		return
	}
	per := time.Duration(float64(time.Second) / float64(lim.Limit()))
	from := at.Add(-time.Duration((tokens - whole) * float64(per)))
	lim.AllowN(from, burst-int(whole))
}

// persist writes the state file atomically and durably: a kill -9 leaves
// the old state or the new one, never a torn file.
func (q *Queue) persist(s throttleState) error {
	if q.stateFile == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("listener: encode throttle state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(q.stateFile), 0o755); err != nil {
		return fmt.Errorf("listener: throttle state directory: %w", err)
	}
	if err := renameio.WriteFile(q.stateFile, b, 0o644); err != nil {
		return fmt.Errorf("listener: write throttle state: %w", err)
	}
	return nil
}

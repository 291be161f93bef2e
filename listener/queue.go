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
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"
)

// Queue coalesces triggers into provision runs: at most one runs and one
// waits, whatever the number of triggers. A run starts once triggers have
// been quiet for the quiet window, or when the oldest waiting trigger is
// max-wait old, and never faster than the throttle allows. One goroutine,
// Run's, owns all of its state; the other methods only send to it.
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
}

type control int

const (
	pause control = iota
	resume
	now // a run as soon as the throttle allows, skipping the quiet window
)

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// WithQuiet sets the quiet window and the maximum wait (defaults 1s, 10s).
func WithQuiet(quiet, maxWait time.Duration) QueueOption {
	return func(q *Queue) { q.quiet, q.maxWait = quiet, maxWait }
}

// WithThrottle lets burst runs start back to back, then one per
// minInterval (defaults 30s, 3).
func WithThrottle(minInterval time.Duration, burst int) QueueOption {
	return func(q *Queue) { q.minInterval, q.burst = minInterval, burst }
}

// WithStateFile persists the throttle's recent run times in path, so a
// restart cannot be used to run faster than the throttle allows.
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
		quiet: time.Second, maxWait: 10 * time.Second, minInterval: 30 * time.Second, burst: 3,
		log: slog.Default(), triggers: make(chan string, 64), control: make(chan control, 8),
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

// queueState is what Run's goroutine owns.
type queueState struct {
	pending      bool
	first, last  time.Time // oldest and newest waiting trigger
	skipQuiet    bool
	running      bool
	paused       bool
	coalesced    int    // triggers absorbed into the pending run
	totalMerged  uint64 // triggers absorbed since start
	limiter      *rate.Limiter
	recentStarts []time.Time
	retry        *backoff.ExponentialBackOff
	retryAt      time.Time // zero: no retry due
}

func (st *queueState) public() QueueState {
	return QueueState{Pending: st.pending, Running: st.running, Paused: st.paused, Coalesced: st.totalMerged, RetryAt: st.retryAt}
}

// Run runs provisions until ctx is done, then waits for the running one.
// Starting queues a run at once.
func (q *Queue) Run(ctx context.Context, provision func(context.Context) error) error {
	st := &queueState{limiter: rate.NewLimiter(rate.Every(q.minInterval), q.burst), retry: backoff.NewExponentialBackOff()}
	st.retry.InitialInterval, st.retry.MaxInterval, st.retry.MaxElapsedTime = q.retryInitial, q.retryMax, 0
	st.retry.Reset() // NewExponentialBackOff started from its own default interval
	if err := q.restore(st); err != nil {
		return err
	}
	start := time.Now()
	st.pending, st.skipQuiet, st.first, st.last = true, true, start, start
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		timer := time.NewTimer(q.wait(st, time.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case reason := <-q.triggers:
			q.add(st, reason, time.Now())
		case c := <-q.control:
			q.apply(st, c, time.Now())
		case err := <-done:
			q.finished(st, err, time.Now())
		case <-timer.C:
			q.retryIfDue(st, time.Now())
			if q.ready(st, time.Now()) {
				q.start(st, time.Now())
				wg.Add(1)
				go func() {
					defer wg.Done()
					done <- provision(ctx) // buffered: never blocks
				}()
			}
		}
		timer.Stop()
		q.observe(st.public())
	}
}

// finished schedules a retry after a failed run; success resets the backoff.
func (q *Queue) finished(st *queueState, err error, t time.Time) {
	st.running = false
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
	if st.retryAt.IsZero() || t.Before(st.retryAt) {
		return
	}
	st.retryAt = time.Time{}
	q.add(st, "retry after a failed run", t)
	st.skipQuiet = true // the backoff was the wait
}

func (q *Queue) add(st *queueState, reason string, t time.Time) {
	if st.pending {
		st.coalesced++
		st.totalMerged++
	} else {
		st.pending, st.first = true, t
	}
	st.last = t
	q.log.Debug("provision triggered", "reason", reason, "coalesced", st.coalesced)
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
	if !st.pending || st.running || st.paused {
		if !st.retryAt.IsZero() && !st.running && !st.paused {
			return max(st.retryAt.Sub(t), 0)
		}
		return time.Hour // nothing to do until a message arrives
	}
	due := st.last.Add(q.quiet)
	if capped := st.first.Add(q.maxWait); capped.Before(due) {
		due = capped
	}
	if st.skipQuiet {
		due = t
	}
	r := st.limiter.ReserveN(t, 1)
	throttled := r.DelayFrom(t)
	r.CancelAt(t)
	return max(due.Sub(t), throttled, 0)
}

func (q *Queue) ready(st *queueState, t time.Time) bool {
	return q.wait(st, t) == 0
}

// start records a run's start in the throttle, persisted.
func (q *Queue) start(st *queueState, t time.Time) {
	st.limiter.AllowN(t, 1)
	st.pending, st.skipQuiet, st.running, st.coalesced = false, false, true, 0
	st.first, st.last = time.Time{}, time.Time{}
	st.recentStarts = append(st.recentStarts, t)
	if len(st.recentStarts) > q.burst {
		st.recentStarts = st.recentStarts[len(st.recentStarts)-q.burst:]
	}
	if err := q.persist(st.recentStarts); err != nil {
		q.log.Warn("cannot persist the throttle; a restart may run sooner than it allows", "err", err)
	}
}

// throttleState is the state file's content.
type throttleState struct {
	RecentStarts []time.Time `json:"recent_starts"`
}

// restore replays persisted run starts into the limiter.
func (q *Queue) restore(st *queueState) error {
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
		q.log.Warn("ignoring an unreadable throttle state", "file", q.stateFile, "err", err)
		return nil
	}
	for _, t := range s.RecentStarts {
		st.limiter.AllowN(t, 1)
	}
	st.recentStarts = s.RecentStarts
	return nil
}

func (q *Queue) persist(starts []time.Time) error {
	if q.stateFile == "" {
		return nil
	}
	b, err := json.Marshal(throttleState{RecentStarts: starts})
	if err != nil {
		return err
	}
	tmp := q.stateFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(q.stateFile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, q.stateFile)
}

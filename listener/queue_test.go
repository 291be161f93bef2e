package listener

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

// runs records provision runs; block, when set, holds each run until released.
type runs struct {
	mu     sync.Mutex
	starts []time.Time
	block  chan struct{}
}

func (r *runs) provision(context.Context) error {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	block := r.block
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	return nil
}

func (r *runs) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startQueue runs q in the test's bubble until the test ends.
func startQueue(t *testing.T, q *Queue, r *runs) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(ctx, r.provision)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Time in these tests is synctest's: it advances only when every goroutine
// of the bubble is blocked, so the figures are exact, not timing-dependent.
func TestBurstOfTriggers(t *testing.T) {
	cases := []struct {
		name           string
		quiet, maxWait time.Duration
	}{
		{"quiet window outlasts the burst", time.Second, 10 * time.Second},
		{"max wait cuts the burst", 200 * time.Millisecond, 500 * time.Millisecond},
		{"short quiet window, long max wait", 50 * time.Millisecond, 10 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &runs{}
				q := NewQueue(WithQuiet(tc.quiet, tc.maxWait), WithThrottle(time.Millisecond, 100), WithQueueLogger(quietLogger()))
				stop := startQueue(t, q, r)
				defer stop()
				synctest.Wait()
				if r.count() != 1 {
					t.Fatalf("starting ran %d provisions, want 1", r.count())
				}
				// 1,000 triggers spread over one second.
				for range 1000 {
					q.Trigger("binding changed")
					time.Sleep(time.Millisecond)
				}
				time.Sleep(time.Minute) // virtual: every pending run has happened
				synctest.Wait()
				if n := r.count() - 1; n < 1 || n > 2 {
					t.Fatalf("1,000 triggers in 1 s gave %d runs, want 1 or 2", n)
				}
			})
		})
	}
}

func TestTriggerDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{block: make(chan struct{})}
		q := NewQueue(WithQuiet(100*time.Millisecond, time.Second), WithThrottle(time.Millisecond, 100), WithQueueLogger(quietLogger()))
		stop := startQueue(t, q, r)
		defer stop()
		synctest.Wait() // the startup run is running, held
		for range 5 {
			q.Trigger("binding changed")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if r.count() != 1 {
			t.Fatalf("%d runs while one was running, want 1", r.count())
		}
		r.block <- struct{}{} // the first run ends
		time.Sleep(time.Minute)
		synctest.Wait()
		if r.count() != 2 {
			t.Fatalf("%d runs after triggers during a run, want exactly 2", r.count())
		}
		close(r.block)
		time.Sleep(time.Hour)
		synctest.Wait()
		if r.count() != 2 {
			t.Fatalf("%d runs with no further trigger, want 2", r.count())
		}
	})
}

func TestPauseRemembersTriggers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &runs{}
		q := NewQueue(WithQuiet(100*time.Millisecond, time.Second), WithThrottle(time.Millisecond, 100), WithQueueLogger(quietLogger()))
		stop := startQueue(t, q, r)
		defer stop()
		synctest.Wait()
		q.Pause()
		q.Trigger("binding changed")
		time.Sleep(time.Hour)
		synctest.Wait()
		if r.count() != 1 {
			t.Fatalf("%d runs while paused, want only the startup run", r.count())
		}
		q.Resume()
		synctest.Wait()
		if r.count() != 2 {
			t.Fatalf("%d runs after resume, want 2: resume runs at once", r.count())
		}
	})
}

func TestThrottleHoldsAcrossRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "throttle.json")
		opts := []QueueOption{WithQuiet(0, 0), WithThrottle(time.Minute, 1), WithStateFile(state), WithQueueLogger(quietLogger())}
		first := &runs{}
		stop := startQueue(t, NewQueue(opts...), first)
		synctest.Wait()
		stop()
		if first.count() != 1 {
			t.Fatalf("first listener ran %d provisions, want 1", first.count())
		}
		time.Sleep(10 * time.Second)

		second := &runs{}
		stop = startQueue(t, NewQueue(opts...), second)
		defer stop()
		time.Sleep(time.Hour)
		synctest.Wait()
		if second.count() != 1 {
			t.Fatalf("restarted listener ran %d provisions, want 1", second.count())
		}
		if gap := second.starts[0].Sub(first.starts[0]); gap < time.Minute {
			t.Fatalf("a restart ran %s after the last run; the throttle allows one a minute", gap)
		}
	})
}

func TestFailedRunIsRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu       sync.Mutex
			starts   []time.Time
			failures = 3 // the first three runs fail
		)
		provision := func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			starts = append(starts, time.Now())
			if len(starts) <= failures {
				return errors.New("provision command exited 1")
			}
			return nil
		}
		var states []QueueState
		q := NewQueue(WithQuiet(100*time.Millisecond, time.Second), WithThrottle(time.Millisecond, 100),
			WithRetry(time.Second, 4*time.Second), WithQueueLogger(quietLogger()),
			WithQueueObserver(func(s QueueState) { states = append(states, s) }))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = q.Run(ctx, provision) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		cancel()
		<-done

		if len(starts) != failures+1 {
			t.Fatalf("%d runs, want %d: each failure retried until one succeeds, then none", len(starts), failures+1)
		}
		// The backoff grows from 1s and is capped at 4s; it is jittered by
		// ±50%, so each gap lies within [0.5, 1.5] times its nominal value.
		nominal := []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond}
		for i, want := range nominal {
			gap := starts[i+1].Sub(starts[i])
			if gap < want/2 || gap > want*3/2 {
				t.Errorf("retry %d came after %v, want about %v", i+1, gap, want)
			}
		}
		last := states[len(states)-1]
		if !last.RetryAt.IsZero() || last.Pending || last.Running {
			t.Errorf("after a success the queue is %+v, want idle with no retry due", last)
		}
	})
}

// script is a provision that takes took (or until the run is cancelled:
// a kill) and fails while failing returns true.
type script struct {
	mu      sync.Mutex
	starts  []time.Time
	took    time.Duration
	failing func(run int) bool
}

func (s *script) provision(ctx context.Context) error {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	run := len(s.starts)
	s.mu.Unlock()
	if s.took > 0 {
		select {
		case <-time.After(s.took):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.failing != nil && s.failing(run) {
		return errors.New("provision command exited 1")
	}
	return nil
}

// since is the run starts at or after t.
func (s *script) since(t time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.starts, t, time.Time.Compare)
	return slices.Clone(s.starts[i:])
}

func always(int) bool { return true }

// offsets returns n offsets every step, from first.
func offsets(n int, first, step time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = first + time.Duration(i)*step
	}
	return out
}

// TestLatencyWithoutStorms runs the queue with its defaults: each trigger's
// latency is the time until the next run starts.
func TestLatencyWithoutStorms(t *testing.T) {
	cases := []struct {
		name             string
		took             time.Duration // each run's duration
		triggers         []time.Duration
		minRuns, maxRuns int
		maxLatency       time.Duration
	}{
		{"isolated trigger starts a run at once", 0, offsets(1, 0, 0), 1, 1, 0},
		{"burst of 100 in 1 s gives at most 2 runs", 50 * time.Millisecond,
			offsets(100, 0, 10*time.Millisecond), 1, 2, time.Second + DefaultQuiet},
		{"one change every 5 s for a minute: each at once", 100 * time.Millisecond,
			offsets(12, 0, 5*time.Second), 12, 12, DefaultQuiet},
		{"triggers during slow runs: one more run each", 3 * time.Second,
			offsets(10, 0, 1100*time.Millisecond), 3, 5, 3*time.Second + DefaultQuiet},
		{"a never-ending stream still runs every max wait", 0,
			offsets(int(3*DefaultMaxWait/(DefaultQuiet/2)), 0, DefaultQuiet/2), 3, 4, DefaultMaxWait},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{took: tc.took}
				q := NewQueue(WithQueueLogger(quietLogger()))
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { defer close(done); _ = q.Run(ctx, s.provision) }()
				defer func() { cancel(); <-done }()
				time.Sleep(time.Minute) // past the startup run and its quiet window
				t0 := time.Now()
				at := make([]time.Time, len(tc.triggers))
				for i, off := range tc.triggers {
					time.Sleep(time.Until(t0.Add(off)))
					at[i] = time.Now()
					q.Trigger("binding changed")
				}
				time.Sleep(time.Minute)
				synctest.Wait()

				runs := s.since(t0)
				if len(runs) < tc.minRuns || len(runs) > tc.maxRuns {
					t.Errorf("%d triggers gave %d runs, want %d to %d", len(at), len(runs), tc.minRuns, tc.maxRuns)
				}
				var worst time.Duration
				for _, trig := range at {
					i, _ := slices.BinarySearchFunc(runs, trig, time.Time.Compare)
					if i == len(runs) {
						t.Fatalf("the trigger at +%s got no run", trig.Sub(t0))
					}
					worst = max(worst, runs[i].Sub(trig))
				}
				if worst > tc.maxLatency {
					t.Errorf("worst latency %s, want at most %s", worst, tc.maxLatency)
				}
			})
		})
	}
}

// TestThrottleGuardsLoopsOnly: with the default throttle (3 back to back,
// then one per 30 s), a failure loop is held, a healthy stream is not.
func TestThrottleGuardsLoopsOnly(t *testing.T) {
	const window = 2 * time.Minute
	allowance := DefaultBurst + int(window/DefaultMinInterval) // guarded runs in the window
	cases := []struct {
		name             string
		failing          func(int) bool
		triggerEvery     time.Duration // 0: none
		minRuns, maxRuns int
	}{
		{"failure loop, no trigger: retries within the throttle", always, 0, 4, allowance},
		{"failure loop, a trigger every second", always, time.Second, 4, allowance},
		{"healthy stream after a recovery is not held", func(run int) bool { return run <= 2 }, 5 * time.Second,
			int(window/(5*time.Second)) - 2, int(window/(5*time.Second)) + 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{took: 100 * time.Millisecond, failing: tc.failing}
				q := NewQueue(WithQueueLogger(quietLogger()))
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				start := time.Now()
				go func() { defer close(done); _ = q.Run(ctx, s.provision) }()
				for tc.triggerEvery > 0 && time.Since(start)+tc.triggerEvery < window {
					time.Sleep(tc.triggerEvery)
					q.Trigger("binding changed")
				}
				time.Sleep(time.Until(start.Add(window)))
				cancel()
				<-done
				n := len(s.since(start))
				if n < tc.minRuns || n > tc.maxRuns {
					t.Errorf("%d runs in %s, want %d to %d", n, window, tc.minRuns, tc.maxRuns)
				}
			})
		})
	}
}

// listenerLife runs listeners one after the other for window, each killed
// after life (a cancel with no clean-up: what kill -9 leaves is the state
// file), each triggered at every odd second of its life. It returns the
// runs started.
func listenerLife(t *testing.T, s *script, opts []QueueOption, life, window time.Duration) int {
	start := time.Now()
	for time.Since(start) < window {
		ctx, cancel := context.WithCancel(t.Context())
		q := NewQueue(opts...)
		done := make(chan struct{})
		go func() { defer close(done); _ = q.Run(ctx, s.provision) }()
		born := time.Now()
		for time.Since(born)+2*time.Second <= life {
			time.Sleep(time.Second)
			q.Trigger("binding changed")
			time.Sleep(time.Second)
		}
		cancel()
		<-done
	}
	return len(s.since(start))
}

// TestRestartLoopNeverOutrunsUninterrupted restarts the listener every 2 s
// for 30 s, sharing its state file, and compares the runs with one
// listener that lives the whole 30 s with the same triggers.
func TestRestartLoopNeverOutrunsUninterrupted(t *testing.T) {
	const window, life = 30 * time.Second, 2 * time.Second
	cases := []struct {
		name                string
		minInterval         time.Duration
		burst               int
		restarted, unbroken *script
	}{
		// A run killed midway is, to the guard, a failed run: the
		// reference is an uninterrupted failure loop.
		{"killed during each run", DefaultMinInterval, DefaultBurst,
			&script{took: time.Hour}, &script{failing: always}},
		{"every run fails", DefaultMinInterval, DefaultBurst,
			&script{failing: always}, &script{failing: always}},
		{"every run fails, a faster throttle", 5 * time.Second, 3,
			&script{failing: always}, &script{failing: always}},
		{"killed during each run, a faster throttle", 5 * time.Second, 3,
			&script{took: time.Hour}, &script{failing: always}},
		{"runs succeed", DefaultMinInterval, DefaultBurst,
			&script{took: 100 * time.Millisecond}, &script{took: 100 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := func() []QueueOption {
					return []QueueOption{WithThrottle(tc.minInterval, tc.burst), WithQueueLogger(quietLogger()),
						WithStateFile(filepath.Join(t.TempDir(), "throttle.json"))}
				}
				unbroken := listenerLife(t, tc.unbroken, opts(), window, window)
				restarted := listenerLife(t, tc.restarted, opts(), life, window)
				t.Logf("%s: %d runs restarted every %s, %d uninterrupted", window, restarted, life, unbroken)
				if restarted > unbroken {
					t.Errorf("a listener restarted every %s ran %d provisions in %s, an uninterrupted one %d",
						life, restarted, window, unbroken)
				}
				if restarted < 1 {
					t.Errorf("a restart loop ran nothing in %s: the guard must still let runs through", window)
				}
			})
		})
	}
}

// TestThrottleStateRestoresExactly: a restored limiter holds the tokens the
// uninterrupted one holds, now and as it refills, whatever came before the
// last start.
func TestThrottleStateRestoresExactly(t *testing.T) {
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	limiter := func() *rate.Limiter { return rate.NewLimiter(rate.Every(30*time.Second), 3) }
	replay := func(starts ...int) *rate.Limiter {
		l := limiter()
		for _, s := range starts {
			l.AllowN(at(s), 1)
		}
		return l
	}
	emptyAt := func(s int) *rate.Limiter {
		l := limiter()
		l.AllowN(at(s), 3)
		return l
	}
	now := at(95)
	cases := []struct {
		name string
		live *rate.Limiter // the uninterrupted listener's throttle
		file []byte        // nil: the live one's snapshot at written
		// written is when the file was written.
		written int
	}{
		{"drained, then one run per interval: older starts matter", replay(0, 0, 0, 30, 60, 90), nil, 90},
		{"a fractional level", replay(0, 10), nil, 10},
		{"no start: full", limiter(), nil, 0},
		{"old format: empty at the newest start", emptyAt(10),
			[]byte(`{"recent_starts":["2026-11-29T12:00:00Z","2026-11-29T12:00:10Z","2026-11-29T12:00:05Z"]}`), 10},
		{"unreadable: empty when read", emptyAt(95), []byte("{"), 90},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(WithThrottle(30*time.Second, 3), WithStateFile(filepath.Join(t.TempDir(), "state", "throttle.json")),
				WithQueueLogger(quietLogger()))
			if tc.file == nil {
				if err := q.persist(snapshot(tc.live, at(tc.written))); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.MkdirAll(filepath.Dir(q.stateFile), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(q.stateFile, tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st := &queueState{limiter: limiter()}
			if err := q.restore(st, now); err != nil {
				t.Fatal(err)
			}
			for k := range 12 {
				when := now.Add(time.Duration(k) * 7 * time.Second)
				if got, want := st.limiter.TokensAt(when), tc.live.TokensAt(when); math.Abs(got-want) > 1e-6 {
					t.Fatalf("restored throttle holds %.6f tokens at +%ds, the uninterrupted one %.6f", got, k*7, want)
				}
			}
		})
	}
}

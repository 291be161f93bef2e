package listener

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
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

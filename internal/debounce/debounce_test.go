package debounce

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestWindowDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := Window{Quiet: 2 * time.Second, Max: 10 * time.Second}
	tests := []struct {
		name        string
		first, last time.Duration // after t0
		want        time.Duration
	}{
		{"one change: a quiet window after it", 0, 0, 2 * time.Second},
		{"a burst: a quiet window after its last change", 0, 5 * time.Second, 7 * time.Second},
		{"a stream: capped at max after its first change", 0, 9 * time.Second, 10 * time.Second},
		{"at the cap exactly", 0, 8 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := w.Due(t0.Add(tt.first), t0.Add(tt.last)); !got.Equal(t0.Add(tt.want)) {
			t.Errorf("%s: Due = %v, want %v", tt.name, got.Sub(t0), tt.want)
		}
	}
}

// Whatever the burst, the action is due no later than Max after its first
// change and no later than Quiet after its last, and at one of the two.
func TestWindowDueProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 10000 {
		w := Window{Quiet: time.Duration(rng.IntN(5000)) * time.Millisecond, Max: time.Duration(rng.IntN(20000)) * time.Millisecond}
		first := t0.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		last := first.Add(time.Duration(rng.IntN(30000)) * time.Millisecond)
		due := w.Due(first, last)
		if due.After(first.Add(w.Max)) || due.After(last.Add(w.Quiet)) {
			t.Fatalf("%+v first %v last %v: due %v is past a bound", w, first, last, due)
		}
		if !due.Equal(first.Add(w.Max)) && !due.Equal(last.Add(w.Quiet)) {
			t.Fatalf("%+v first %v last %v: due %v is neither bound", w, first, last, due)
		}
	}
}

func TestWindowIdle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := Window{Quiet: time.Second, Max: time.Minute}
	tests := []struct {
		gap  time.Duration
		want bool
	}{{0, false}, {999 * time.Millisecond, false}, {time.Second, true}, {time.Hour, true}}
	for _, tt := range tests {
		if got := w.Idle(t0, t0.Add(tt.gap)); got != tt.want {
			t.Errorf("Idle after %v = %v, want %v", tt.gap, got, tt.want)
		}
	}
}

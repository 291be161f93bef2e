// Package debounce is patchbay's one debouncing rule, shared by the
// resolver daemon (changes in Consul → a resolve pass) and the listener's
// queue (triggers → a provision run): a burst is acted on once it has been
// quiet for a window, but never later than a maximum after its first
// change, so a steady stream of changes cannot starve the action.
package debounce

import "time"

// Window is a quiet window capped by a maximum wait.
type Window struct {
	// Quiet is how long changes must stop before the burst is acted on.
	Quiet time.Duration
	// Max bounds the wait from the burst's first change.
	Max time.Duration
}

// Due is when a burst first seen at first and last seen at last is acted
// on: Quiet after last, or Max after first if that is sooner.
func (w Window) Due(first, last time.Time) time.Time {
	due := last.Add(w.Quiet)
	if capped := first.Add(w.Max); capped.Before(due) {
		return capped
	}
	return due
}

// Idle reports whether a change at first follows the last action at
// prev by a whole quiet window, so that it may be acted on at once (the
// leading edge): an isolated change waits for nothing.
func (w Window) Idle(prev, first time.Time) bool {
	return first.Sub(prev) >= w.Quiet
}

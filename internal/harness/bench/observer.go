package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// observer follows the consumers' rendered files with one inotify instance
// on their directories: it counts each file's rewrites (both fleets install
// by renaming a new file into place, one create event each) and records
// when each file first held an awaited line.
type observer struct {
	w *fsnotify.Watcher

	mu       sync.Mutex
	files    map[string]*watched
	targets  []*target
	overflow int // times the kernel dropped events: rewrites may be undercounted
}

type watched struct {
	rewrites int
	content  []byte
}

// target is one awaited line: when each file first held it.
type target struct {
	needle []byte
	t0     time.Time
	seen   map[string]time.Time
}

func newObserver() (*observer, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("bench: watch files: %w", err)
	}
	return &observer{w: w, files: map[string]*watched{}}, nil
}

// add follows path, whose directory must exist.
func (o *observer) add(path string) error {
	o.mu.Lock()
	o.files[path] = &watched{}
	o.mu.Unlock()
	if err := o.w.Add(filepath.Dir(path)); err != nil {
		return fmt.Errorf("bench: watch %s: %w", filepath.Dir(path), err)
	}
	o.read(path, time.Now(), false)
	return nil
}

// forget stops following paths (their directories stay watched until
// close, harmlessly).
func (o *observer) forget(paths []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range paths {
		delete(o.files, p)
	}
}

// run handles events until ctx ends, then closes the watcher.
func (o *observer) run(ctx context.Context) error {
	defer func() { _ = o.w.Close() }() // the run is over; nothing is lost with the watcher
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-o.w.Events:
			if !ok {
				return errors.New("bench: file watcher closed")
			}
			now := time.Now()
			if ev.Has(fsnotify.Create) {
				o.countRewrite(ev.Name)
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) {
				o.read(ev.Name, now, false)
			}
		case _, ok := <-o.w.Errors:
			if !ok {
				return errors.New("bench: file watcher closed")
			}
			o.rescan()
		}
	}
}

func (o *observer) countRewrite(path string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if f, ok := o.files[path]; ok {
		f.rewrites++
	}
}

// rescan reads every file after the kernel dropped events (thousands of
// simulated listeners overflow inotify's queue): a file found holding a
// line counts from its modification time, when it was written, rather
// than from the rescan, which would give every file the same late time.
func (o *observer) rescan() {
	o.mu.Lock()
	o.overflow++
	paths := make([]string, 0, len(o.files))
	for p := range o.files {
		paths = append(paths, p)
	}
	o.mu.Unlock()
	now := time.Now()
	for _, p := range paths {
		o.read(p, now, true)
	}
}

// read records path's content, and the targets it now meets, at at or,
// with written, at the file's modification time if earlier.
func (o *observer) read(path string, at time.Time, written bool) {
	o.mu.Lock()
	_, ok := o.files[path]
	o.mu.Unlock()
	if !ok {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return // not rendered yet, or being replaced: the next event reads it
	}
	if st, err := os.Stat(path); written && err == nil && st.ModTime().Before(at) {
		at = st.ModTime()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	f, ok := o.files[path]
	if !ok {
		return
	}
	f.content = b
	for _, t := range o.targets {
		if _, done := t.seen[path]; !done && bytes.Contains(b, t.needle) {
			t.seen[path] = maxTime(at, t.t0)
		}
	}
}

// expect starts recording when each file holds needle, from t0; files
// that hold it already count at once.
func (o *observer) expect(needle string, t0 time.Time) *target {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := &target{needle: []byte(needle), t0: t0, seen: map[string]time.Time{}}
	for p, f := range o.files {
		if bytes.Contains(f.content, t.needle) {
			t.seen[p] = t0
		}
	}
	o.targets = append(o.targets, t)
	return t
}

// drop stops recording t.
func (o *observer) drop(t *target) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, x := range o.targets {
		if x == t {
			o.targets = append(o.targets[:i], o.targets[i+1:]...)
			return
		}
	}
}

// latencies are, for each of paths that holds t's line, how long after t0
// it first did; missing counts the others.
func (o *observer) latencies(t *target, paths []string) (ds []time.Duration, missing int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range paths {
		at, ok := t.seen[p]
		if !ok {
			missing++
			continue
		}
		ds = append(ds, at.Sub(t.t0))
	}
	return ds, missing
}

// all reports whether every one of paths holds each of ts's lines.
func (o *observer) all(paths []string, ts ...*target) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range ts {
		for _, p := range paths {
			if _, ok := t.seen[p]; !ok {
				return false
			}
		}
	}
	return true
}

// rewrites is the number of times each of paths was replaced so far.
func (o *observer) rewrites(paths []string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := make([]int, len(paths))
	for i, p := range paths {
		if f, ok := o.files[p]; ok {
			n[i] = f.rewrites
		}
	}
	return n
}

// totalRewrites is the rewrites of paths together, to detect quiet.
func (o *observer) totalRewrites(paths []string) int {
	sum := 0
	for _, n := range o.rewrites(paths) {
		sum += n
	}
	return sum
}

// awaitAll polls until every one of paths holds each of ts's lines, or
// fails after limit.
func (o *observer) awaitAll(ctx context.Context, limit time.Duration, paths []string, ts ...*target) error {
	return poll(ctx, limit, 5*time.Millisecond, func() bool { return o.all(paths, ts...) })
}

// errTimeout: a bounded wait ended before its condition held.
var errTimeout = errors.New("bench: timed out")

// poll checks cond every interval until it holds, ctx ends or limit
// passes.
func poll(ctx context.Context, limit, interval time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", errTimeout, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/patchbay/patchbay/templates"
)

// DefaultSettle is how long events for a kept path must be quiet before it
// is checked.
const DefaultSettle = 100 * time.Millisecond

// What a check found at a kept path, for logs.
const (
	driftEdited  = "edited"
	driftRemoved = "removed"
	// A symbolic link or directory put in the file's place: replaced by
	// the file, never followed.
	driftSwapped = "replaced by something not a file"
	driftMode    = "mode changed"
)

// Files installs the listener's rendered files and keeps them as installed:
// a file edited, replaced or removed by hand is put back.
//
// Directories are watched rather than files, because every install replaces
// the file by a rename, which ends a watch on the file itself.
//
// The watch state belongs to Run's goroutine while it runs: Install and
// Forget send it requests. Before Run and after it returns, the state waits
// in idle and each request is done by the caller that takes it: files are
// installed and kept as usual, and Run checks them all when it starts.
type Files struct {
	log       *slog.Logger
	settle    time.Duration
	onRestore func(path string, err error)
	run       CommandRunner
	w         *fsnotify.Watcher // nil: WithoutWatcher, drift is not watched
	noWatch   bool

	reqs chan func(*watchState) // served by Run's goroutine
	idle chan *watchState       // capacity 1: holds the state while Run does not
}

// watchState is what Files knows of the paths it keeps; one goroutine at a
// time has it (Files.do).
type watchState struct {
	log    *slog.Logger
	settle time.Duration
	kept   map[string]expectation
	// busy paths are being written (Install, Forget) or checked, one writer
	// at a time so that the expected content is recorded together with
	// writing it. The writers waiting for a path wait for their channel to
	// be closed, in turn.
	busy map[string][]chan struct{}

	// Only while Run runs, else nil and empty.
	w      *fsnotify.Watcher
	dirs   map[string]bool      // watched directories
	due    map[string]time.Time // when each path with recent events is to be checked
	checks int                  // check goroutines not done yet
}

// expectation is what was installed at a path, and how.
type expectation struct {
	content       []byte
	file          templates.File
	reload        []string
	reloadTimeout time.Duration
	// stamp is the file as the install left it: an event about a path
	// that still carries it is the install's own, and costs no check.
	stamp templates.Stamp
}

// Option configures Files.
type Option func(*Files)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(fs *Files) { fs.log = l } }

// CommandRunner runs a command with a timeout; templates.Run is the real one.
type CommandRunner func(ctx context.Context, argv []string, timeout time.Duration, opts ...templates.RunOption) error

// WithCommandRunner sets what runs reload commands after a restore
// (default templates.Run).
func WithCommandRunner(run CommandRunner) Option { return func(fs *Files) { fs.run = run } }

// WithSettle sets how long events for a path must be quiet before it is
// checked (default 100ms): editors write in several steps, and restoring
// between them would race with the editor.
func WithSettle(d time.Duration) Option { return func(fs *Files) { fs.settle = max(d, 0) } }

// WithOnRestore sets a function called after each restore attempt, with
// the error of the restore or of the reload after it. Calls for different
// paths may be concurrent.
func WithOnRestore(fn func(path string, err error)) Option {
	return func(fs *Files) { fs.onRestore = fn }
}

// WithoutWatcher installs files without watching them for drift: no
// inotify instance, which the kernel limits per user (128 by default), so
// that thousands of listeners can share one process in the fleet
// simulation of `make bench`.
func WithoutWatcher() Option { return func(fs *Files) { fs.noWatch = true } }

// NewFiles creates the file watcher; Run must be called to close it.
func New(opts ...Option) (*Files, error) {
	fs := &Files{
		log: slog.Default(), settle: DefaultSettle, onRestore: func(string, error) {}, run: templates.Run,
		reqs: make(chan func(*watchState)), idle: make(chan *watchState, 1),
	}
	for _, o := range opts {
		o(fs)
	}
	fs.idle <- &watchState{
		log: fs.log, settle: fs.settle, kept: make(map[string]expectation), busy: make(map[string][]chan struct{}),
		dirs: make(map[string]bool), due: make(map[string]time.Time),
	}
	if fs.noWatch {
		return fs, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("listener: watch files: %w", err)
	}
	fs.w = w
	return fs, nil
}

// do runs fn with the watch state: on Run's goroutine while it runs, else
// on the caller's. fn must not block.
func (fs *Files) do(fn func(st *watchState)) {
	done := make(chan struct{})
	select {
	case fs.reqs <- func(st *watchState) { fn(st); close(done) }:
		<-done
	case st := <-fs.idle:
		fn(st)
		fs.idle <- st
	}
}

// Install installs content at f.Destination (templates.Install) and from
// then on keeps it there. The reload command is run after a restore, never
// after Install: the caller deduplicates the reloads of a run. An install
// waits for one of the same path in progress, or its restore.
func (fs *Files) Install(ctx context.Context, content []byte, f templates.File, reload []string, reloadTimeout time.Duration) (changed bool, err error) {
	path := filepath.Clean(f.Destination)
	f.Destination, f.Log = path, fs.log // the first install removes a killed one's staged files, logged here
	fs.acquire(path)
	changed, stamp, err := templates.InstallStamped(ctx, content, f)
	if err != nil && !changed && !installedHolds(f, content) {
		// Nothing was written (a failed check, say): the previous
		// expectation, if any, still describes the file.
		fs.do(func(st *watchState) { st.release(path) })
		return false, err
	}
	// Recorded even on an error once the content is in place (a failed
	// directory sync, chmod or chown), or a restore would put back the old
	// content.
	want := expectation{
		content: bytes.Clone(content), file: f,
		reload: append([]string(nil), reload...), reloadTimeout: reloadTimeout,
		stamp: stamp,
	}
	fs.do(func(st *watchState) { st.keep(path, want); st.release(path) })
	return changed, err
}

// installedHolds reports whether f's destination is a regular file with
// exactly content.
func installedHolds(f templates.File, content []byte) bool {
	got, _, err := templates.ReadInstalled(f)
	return err == nil && bytes.Equal(got, content)
}

// Forget stops keeping path (its template was removed); the file stays.
// It waits for an install or restore of path in progress.
func (fs *Files) Forget(path string) {
	path = filepath.Clean(path)
	fs.acquire(path)
	fs.do(func(st *watchState) { st.forget(path); st.release(path) })
}

// acquire waits until path is the caller's to write.
func (fs *Files) acquire(path string) {
	var turn chan struct{}
	fs.do(func(st *watchState) { turn = st.acquire(path) })
	if turn != nil {
		<-turn
	}
}

// acquire makes path busy, or returns the channel to wait on for it.
func (st *watchState) acquire(path string) chan struct{} {
	waiters, busy := st.busy[path]
	if !busy {
		st.busy[path] = nil
		return nil
	}
	turn := make(chan struct{})
	st.busy[path] = append(waiters, turn)
	return turn
}

// release hands path to the next writer waiting for it, if any.
func (st *watchState) release(path string) {
	waiters := st.busy[path]
	if len(waiters) == 0 {
		delete(st.busy, path)
		return
	}
	close(waiters[0])
	st.busy[path] = waiters[1:]
}

// keep records what is expected at path and makes sure its directory is
// watched.
func (st *watchState) keep(path string, want expectation) {
	st.kept[path] = want
	st.watch(filepath.Dir(path))
	if _, due := st.due[path]; due && want.stamp.Untouched(path) {
		// Marked by the install's own rename, and nothing changed the
		// file since Install stamped it.
		delete(st.due, path)
	}
}

// forget stops keeping path, and watching its directory with the last path
// kept in it.
func (st *watchState) forget(path string) {
	delete(st.kept, path)
	dir := filepath.Dir(path)
	if !st.dirs[dir] || len(st.keptIn(dir)) > 0 {
		return
	}
	delete(st.dirs, dir)
	if err := st.w.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
		st.log.Debug("listener: remove directory watch", "dir", dir, "err", err)
	}
}

// watch watches dir while Run runs, if it is not watched yet. A watch added
// now may have missed changes made before it, so the paths kept in dir are
// checked.
func (st *watchState) watch(dir string) {
	if st.w == nil || st.dirs[dir] {
		return
	}
	if err := st.w.Add(dir); err != nil {
		// The directory may not exist yet (the install creates it); the
		// next install or check tries again.
		st.log.Debug("listener: cannot watch directory yet", "dir", dir, "err", err)
		return
	}
	st.dirs[dir] = true
	st.markDue(st.keptIn(dir)...)
}

// keptIn returns the paths kept in dir.
func (st *watchState) keptIn(dir string) []string {
	var paths []string
	for path := range st.kept {
		if filepath.Dir(path) == dir {
			paths = append(paths, path)
		}
	}
	return paths
}

// Run watches until ctx is done and restores drifted files; it closes the
// watcher before returning, and returns nil once ctx is done. It waits for
// the checks it started, and Install and Forget work on without watching
// after it returned.
func (fs *Files) Run(ctx context.Context) error {
	if fs.w == nil {
		<-ctx.Done()
		return nil
	}
	st := <-fs.idle
	defer func() { fs.idle <- st }()
	var wg sync.WaitGroup
	defer wg.Wait()
	lost := make(chan struct{}, 1)
	wg.Go(func() { fs.readErrors(lost) })
	st.start(fs.w)
	err := fs.watch(ctx, st, lost, &wg)
	st.stop()
	// Its error is fsnotify ending its own goroutine: nothing left to
	// watch or report.
	_ = fs.w.Close()
	for st.checks > 0 {
		(<-fs.reqs)(st)
	}
	return err
}

// readErrors reads the watcher's errors until it is closed, never waiting
// for Run's goroutine: the watcher's goroutine may send one while holding
// the lock that adding or removing a watch, on Run's goroutine, waits for.
func (fs *Files) readErrors(lost chan<- struct{}) {
	for err := range fs.w.Errors {
		fs.log.Warn("listener: file watcher may have lost events, checking every kept file", "err", err)
		select {
		case lost <- struct{}{}:
		default: // a check of every file is due already
		}
	}
}

// watch serves requests and events until ctx is done or the watcher fails.
func (fs *Files) watch(ctx context.Context, st *watchState, lost <-chan struct{}, wg *sync.WaitGroup) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		st.arm(timer)
		select {
		case <-ctx.Done():
			return nil
		case req := <-fs.reqs:
			req(st)
		case ev, ok := <-fs.w.Events:
			if !ok {
				return errors.New("listener: file watcher closed")
			}
			st.event(ev)
		case <-lost:
			st.markDue(slices.Collect(maps.Keys(st.kept))...)
		case <-timer.C:
			// Each in its own goroutine, so that a slow check or reload
			// command does not delay the other files.
			for path, want := range st.settled() {
				wg.Go(func() {
					fs.check(ctx, path, want)
					fs.do(func(st *watchState) { st.checked(path) })
				})
			}
		}
	}
}

// start watches the directories of the paths kept, and has them all
// checked: they may have been changed before their events could be read.
func (st *watchState) start(w *fsnotify.Watcher) {
	st.w = w
	for path := range st.kept {
		st.watch(filepath.Dir(path))
	}
	st.markDue(slices.Collect(maps.Keys(st.kept))...)
}

// stop ends watching; the checks in progress finish.
func (st *watchState) stop() {
	st.w = nil
	clear(st.dirs)
	clear(st.due)
}

func (st *watchState) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove|fsnotify.Rename) && st.dirs[name] {
		// The watcher dropped the directory's watch, and the files in it
		// are to be restored. If the event is stale, about a directory
		// recreated and watched again, adding the watch again is harmless.
		delete(st.dirs, name)
		st.markDue(st.keptIn(name)...)
	}
	// A path being installed for the first time is checked once recorded.
	want, kept := st.kept[name]
	_, busy := st.busy[name]
	if kept && !busy && want.stamp.Untouched(name) {
		return // a late event of the listener's own install
	}
	if kept || busy {
		st.markDue(name)
	}
}

// markDue (re)starts the settle time of paths.
func (st *watchState) markDue(paths ...string) {
	at := time.Now().Add(st.settle)
	for _, p := range paths {
		st.due[p] = at
	}
}

// arm sets the timer to the earliest deadline of a path that can be
// checked now: a busy path waits in due until it is released.
func (st *watchState) arm(timer *time.Timer) {
	var next time.Time
	for p, at := range st.due {
		if _, busy := st.busy[p]; !busy && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if next.IsZero() {
		timer.Stop()
		return
	}
	timer.Reset(time.Until(next))
}

// settled returns the due paths to check now, with what is expected there,
// and makes them busy until checked.
func (st *watchState) settled() map[string]expectation {
	now := time.Now()
	checks := make(map[string]expectation)
	for p, at := range st.due {
		if _, busy := st.busy[p]; busy || at.After(now) {
			continue
		}
		delete(st.due, p)
		if want, ok := st.kept[p]; ok {
			st.busy[p] = nil
			st.checks++
			checks[p] = want
		}
	}
	return checks
}

// checked ends the check of path. Its directory is watched again even
// after a failed restore, which may have recreated a removed directory:
// without a watch no event would bring a retry. And after no change at
// all, since the directory's removal may be reported after it was
// recreated.
func (st *watchState) checked(path string) {
	st.checks--
	st.release(path)
	st.watch(filepath.Dir(path))
}

// check restores path if it differs from what was installed there, then
// runs its reload command if the content had to be put back. path is busy
// meanwhile: an install of it waits, and comes after the reload.
func (fs *Files) check(ctx context.Context, path string, want expectation) {
	what, err := driftOf(path, want)
	if what != "" && err == nil {
		err = restoreKept(ctx, want)
	}
	if what == "" && err == nil {
		return // our own install, or an edit undone
	}
	if err != nil {
		fs.log.Error("listener: could not restore a file edited by hand", "path", path, "change", what, "err", err)
		fs.onRestore(path, err)
		return
	}
	fs.log.Warn("listener: restored a file edited by hand", "path", path, "change", what)
	// The service reads the same content after a mode change: no reload.
	if what != driftMode && len(want.reload) > 0 {
		if err := fs.run(ctx, want.reload, want.reloadTimeout); err != nil {
			err = fmt.Errorf("listener: reload after restoring %s: %w", path, err)
			fs.log.Error("listener: reload after restoring a file failed", "path", path, "err", err, templates.OutputAttr(err))
			fs.onRestore(path, err)
			return
		}
	}
	fs.onRestore(path, nil)
}

// driftOf says how path differs from what was installed there, "" if it
// does not.
// It reads through the install's confinement: a link at path or on the way
// to it is never followed.
func driftOf(path string, want expectation) (string, error) {
	got, mode, err := templates.ReadInstalled(want.file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return driftRemoved, nil
	case errors.Is(err, templates.ErrNotRegular):
		return driftSwapped, nil
	case err != nil:
		return "", fmt.Errorf("listener: check %s: %w", path, err)
	case !bytes.Equal(got, want.content):
		return driftEdited, nil
	case mode.Perm() != want.file.Perms:
		return driftMode, nil
	}
	return "", nil
}

// restoreKept puts the installed content back with the same settings, check
// included. Without a backup: it would replace the last good version kept
// for rollback by the hand-edited one.
func restoreKept(ctx context.Context, want expectation) error {
	f := want.file
	f.Backup = false
	if _, err := templates.Install(ctx, want.content, f); err != nil {
		return fmt.Errorf("listener: restore %s: %w", f.Destination, err)
	}
	return nil
}

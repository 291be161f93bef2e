package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	driftMode    = "mode changed"
)

// Files installs the listener's rendered files and keeps them as installed:
// a file edited, replaced or removed by hand is put back.
//
// Directories are watched rather than files, because every install replaces
// the file by a rename, which ends a watch on the file itself.
type Files struct {
	log       *slog.Logger
	settle    time.Duration
	onRestore func(path string, err error)
	run       CommandRunner
	w         *fsnotify.Watcher // nil: WithoutWatcher, drift is not watched
	noWatch   bool

	// wmu serialises changes of the watch list, so that watchedDir.watched
	// follows it; taken before mu, never by Run's goroutine.
	wmu sync.Mutex
	// mu guards the maps, and the fields of kept other than write. Held
	// briefly, never while waiting for a command, a write or the watcher.
	mu    sync.Mutex
	paths map[string]*kept
	dirs  map[string]*watchedDir
	// pending are paths to check soon, handed to Run's goroutine: a watch
	// added after a write may have missed a change made in between.
	pending map[string]struct{}
	wake    chan struct{} // capacity 1: tells Run that pending is not empty
}

// kept is one path Files keeps. write serialises every write of the path
// (Install, restore) and Forget, so that the expected content is recorded
// together with writing it; the other fields are guarded by Files.mu, so
// reading them never waits for a slow check command.
type kept struct {
	write     sync.Mutex
	installed bool // false until an Install put the content in place
	want      expectation
}

// expectation is what was installed at a path, and how.
type expectation struct {
	content       []byte
	file          templates.File
	reload        []string
	reloadTimeout time.Duration
}

// watchedDir counts the paths kept in a directory, so its watch is removed
// with the last one.
type watchedDir struct {
	paths   int
	watched bool
}

// FilesOption configures Files.
type FilesOption func(*Files)

// WithFilesLogger sets the logger (default slog.Default()).
func WithFilesLogger(l *slog.Logger) FilesOption { return func(fs *Files) { fs.log = l } }

// CommandRunner runs a command with a timeout; templates.Run is the real one.
type CommandRunner func(ctx context.Context, argv []string, timeout time.Duration, opts ...templates.RunOption) error

// WithCommandRunner sets what runs reload commands after a restore
// (default templates.Run).
func WithCommandRunner(run CommandRunner) FilesOption { return func(fs *Files) { fs.run = run } }

// WithSettle sets how long events for a path must be quiet before it is
// checked (default 100ms): editors write in several steps, and restoring
// between them would race with the editor.
func WithSettle(d time.Duration) FilesOption { return func(fs *Files) { fs.settle = max(d, 0) } }

// WithOnRestore sets a function called after each restore attempt, with
// the error of the restore or of the reload after it. Calls for different
// paths may be concurrent.
func WithOnRestore(fn func(path string, err error)) FilesOption {
	return func(fs *Files) { fs.onRestore = fn }
}

// WithoutWatcher installs files without watching them for drift: no
// inotify instance, which the kernel limits per user (128 by default), so
// that thousands of listeners can share one process in the fleet
// simulation of `make bench`.
func WithoutWatcher() FilesOption { return func(fs *Files) { fs.noWatch = true } }

// NewFiles creates the file watcher; Run must be called to close it.
func NewFiles(opts ...FilesOption) (*Files, error) {
	fs := &Files{
		log: slog.Default(), settle: DefaultSettle, onRestore: func(string, error) {}, run: templates.Run,
		paths: make(map[string]*kept), dirs: make(map[string]*watchedDir),
		pending: make(map[string]struct{}), wake: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(fs)
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

// Install installs content at f.Destination (templates.Install) and from
// then on keeps it there. The reload command is run after a restore, never
// after Install: the caller deduplicates the reloads of a run.
func (fs *Files) Install(ctx context.Context, content []byte, f templates.File, reload []string, reloadTimeout time.Duration) (changed bool, err error) {
	path := filepath.Clean(f.Destination)
	f.Destination, f.Log = path, fs.log // the first install removes a killed one's staged files, logged here
	e := fs.lock(path)
	defer e.write.Unlock()
	changed, err = templates.Install(ctx, content, f)
	if err != nil && !changed && !fileHolds(path, content) {
		// Nothing was written (a failed check, say): the previous
		// expectation, if any, still describes the file.
		fs.dropUninstalled(path, e)
		return false, err
	}
	// Recorded even on an error once the content is in place (a failed
	// directory sync, chmod or chown), or a restore would put back the old
	// content.
	fs.record(path, e, expectation{
		content: bytes.Clone(content), file: f,
		reload: append([]string(nil), reload...), reloadTimeout: reloadTimeout,
	})
	return changed, err
}

// fileHolds reports whether path has exactly content.
func fileHolds(path string, content []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, content)
}

// Forget stops keeping path (its template was removed); the file stays.
// It waits for an install or restore of path in progress.
func (fs *Files) Forget(path string) {
	path = filepath.Clean(path)
	e := fs.lock(path)
	defer e.write.Unlock()
	fs.mu.Lock()
	fs.dropLocked(path)
	fs.mu.Unlock()
	fs.unwatchUnused(filepath.Dir(path))
}

// lock returns path's entry, created if need be, with its write lock held.
func (fs *Files) lock(path string) *kept {
	for {
		fs.mu.Lock()
		e, ok := fs.paths[path]
		if !ok {
			e = &kept{}
			fs.paths[path] = e
			fs.countPathLocked(filepath.Dir(path))
		}
		fs.mu.Unlock()
		if !ok {
			// Before the install, so that it is watched from the start
			// when the directory exists already.
			fs.watchDir(filepath.Dir(path))
		}
		e.write.Lock()
		fs.mu.Lock()
		current := fs.paths[path] == e
		fs.mu.Unlock()
		if current {
			return e
		}
		// Forgotten while we waited: a new entry must not be written
		// concurrently with this one.
		e.write.Unlock()
	}
}

// lockInstalled returns path's entry with its write lock held and a copy
// of what is expected there; ok is false when path is not kept.
func (fs *Files) lockInstalled(path string) (e *kept, want expectation, ok bool) {
	fs.mu.Lock()
	e, ok = fs.paths[path]
	fs.mu.Unlock()
	if !ok {
		return nil, expectation{}, false
	}
	e.write.Lock()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.paths[path] != e || !e.installed {
		e.write.Unlock()
		return nil, expectation{}, false
	}
	return e, e.want, true
}

// record sets what is expected at path and makes sure its directory is
// watched.
func (fs *Files) record(path string, e *kept, want expectation) {
	fs.mu.Lock()
	e.installed, e.want = true, want
	fs.mu.Unlock()
	fs.watchDir(filepath.Dir(path))
}

// dropUninstalled forgets an entry whose first install failed.
func (fs *Files) dropUninstalled(path string, e *kept) {
	fs.mu.Lock()
	drop := !e.installed && fs.paths[path] == e
	if drop {
		fs.dropLocked(path)
	}
	fs.mu.Unlock()
	if drop {
		fs.unwatchUnused(filepath.Dir(path))
	}
}

func (fs *Files) dropLocked(path string) {
	if _, ok := fs.paths[path]; !ok {
		return
	}
	delete(fs.paths, path)
	dir := filepath.Dir(path)
	d := fs.dirs[dir]
	if d.paths--; d.paths == 0 {
		delete(fs.dirs, dir)
	}
}

func (fs *Files) countPathLocked(dir string) {
	d, ok := fs.dirs[dir]
	if !ok {
		d = &watchedDir{}
		fs.dirs[dir] = d
	}
	d.paths++
}

// Watches are added and removed under wmu but outside mu: the watcher's
// goroutine may hold its own lock while it waits for Run's goroutine to
// read an error, and Run's goroutine takes mu.

// watchDir watches dir if it keeps paths and is not watched yet. A watch
// added now may have missed changes made before it, so the installed paths
// in dir are checked.
func (fs *Files) watchDir(dir string) {
	if fs.w == nil {
		return
	}
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	fs.mu.Lock()
	d, ok := fs.dirs[dir]
	ok = ok && !d.watched
	fs.mu.Unlock()
	if !ok {
		return
	}
	if err := fs.w.Add(dir); err != nil {
		// The directory may not exist yet (the install creates it), or
		// the watcher is closed; the next install or check tries again.
		fs.log.Debug("listener: cannot watch directory yet", "dir", dir, "err", err)
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.dirs[dir] != d {
		return // dropped meanwhile; unwatchUnused waits for wmu
	}
	d.watched = true
	paths := fs.keptLocked(dir)
	if len(paths) == 0 {
		return
	}
	for _, p := range paths {
		fs.pending[p] = struct{}{}
	}
	select {
	case fs.wake <- struct{}{}:
	default: // Run has been told already
	}
}

// unwatchUnused removes the watch on dir if no path is kept in it.
func (fs *Files) unwatchUnused(dir string) {
	if fs.w == nil {
		return
	}
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	fs.mu.Lock()
	_, used := fs.dirs[dir]
	fs.mu.Unlock()
	if used {
		return
	}
	err := fs.w.Remove(dir)
	if err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
		fs.log.Debug("listener: remove directory watch", "dir", dir, "err", err)
	}
}

// lostDir handles a watched directory removed or moved away: the watcher
// dropped its watch, and the files in it are to be restored.
func (fs *Files) lostDir(dir string) []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, ok := fs.dirs[dir]
	if !ok {
		return nil
	}
	// If the event is stale, about a directory already recreated and
	// watched again, the check of its paths adds the watch again: adding
	// an existing watch is harmless.
	d.watched = false
	return fs.keptLocked(dir)
}

// keptLocked returns the installed paths in dir, or all of them if dir is "".
func (fs *Files) keptLocked(dir string) []string {
	var paths []string
	for path, e := range fs.paths {
		if e.installed && (dir == "" || filepath.Dir(path) == dir) {
			paths = append(paths, path)
		}
	}
	return paths
}

func (fs *Files) allKept() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.keptLocked("")
}

// isKnown reports whether path is kept or being installed for the first
// time: an edit right after that install is to be checked once it is
// recorded.
func (fs *Files) isKnown(path string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.paths[path]
	return ok
}

func (fs *Files) isWatchedDir(dir string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.dirs[dir]
	return ok
}

func (fs *Files) takePending() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	paths := make([]string, 0, len(fs.pending))
	for path := range fs.pending {
		paths = append(paths, path)
	}
	clear(fs.pending)
	return paths
}

// check restores path if it differs from what was installed there, then
// runs its reload command if the content had to be put back.
func (fs *Files) check(ctx context.Context, path string) {
	e, want, ok := fs.lockInstalled(path)
	if !ok {
		return
	}
	what, err := driftOf(path, want)
	if what != "" && err == nil {
		err = restoreKept(ctx, want)
	}
	e.write.Unlock()
	// Even after a failed restore, which may have recreated a removed
	// directory: without a watch no event would bring a retry. And after
	// no change at all, since the directory's removal may be reported
	// after it was recreated.
	fs.watchDir(filepath.Dir(path))
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
			fs.log.Error("listener: reload after restoring a file failed", "path", path, "err", err)
			fs.onRestore(path, err)
			return
		}
	}
	fs.onRestore(path, nil)
}

// driftOf says how path differs from what was installed there, "" if it
// does not.
func driftOf(path string, want expectation) (string, error) {
	got, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return driftRemoved, nil
	}
	if err != nil {
		return "", fmt.Errorf("listener: check %s: %w", path, err)
	}
	if !bytes.Equal(got, want.content) {
		return driftEdited, nil
	}
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return driftRemoved, nil
	}
	if err != nil {
		return "", fmt.Errorf("listener: check %s: %w", path, err)
	}
	if st.Mode().Perm() != want.file.Perms {
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

// Run watches until ctx is done and restores drifted files; it closes the
// watcher before returning, and returns nil once ctx is done.
func (fs *Files) Run(ctx context.Context) error {
	if fs.w == nil {
		<-ctx.Done()
		return nil
	}
	l := &watchLoop{
		fs: fs, ctx: ctx, due: make(map[string]time.Time), busy: make(map[string]bool),
		done: make(chan string), timer: time.NewTimer(time.Hour),
	}
	defer l.wg.Wait()
	// Closed before waiting for the checks: one may be adding a watch
	// while the watcher's goroutine, holding the watcher's lock, waits for
	// this goroutine to read an error. Adding to a closed watcher fails
	// at once. Its error is fsnotify ending its own goroutine: nothing left
	// to watch or report.
	defer func() { _ = fs.w.Close() }()
	defer l.timer.Stop()
	// Files installed before Run may have been changed before their
	// events could be read.
	l.markDue(fs.allKept())
	for {
		l.arm()
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fs.w.Events:
			if !ok {
				return errors.New("listener: file watcher closed")
			}
			l.event(ev)
		case err, ok := <-fs.w.Errors:
			if !ok {
				return errors.New("listener: file watcher closed")
			}
			fs.log.Warn("listener: file watcher may have lost events, checking every kept file", "err", err)
			l.markDue(fs.allKept())
		case <-fs.wake:
			l.markDue(fs.takePending())
		case path := <-l.done:
			delete(l.busy, path)
		case <-l.timer.C:
			l.dispatch()
		}
	}
}

// watchLoop is the state of Run's goroutine, which alone touches it.
type watchLoop struct {
	fs  *Files
	ctx context.Context
	// due is when each path with recent events is to be checked.
	due map[string]time.Time
	// busy paths are being checked; their events wait in due until done.
	busy  map[string]bool
	done  chan string
	timer *time.Timer
	wg    sync.WaitGroup
}

func (l *watchLoop) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove|fsnotify.Rename) && l.fs.isWatchedDir(name) {
		l.markDue(l.fs.lostDir(name))
	}
	if l.fs.isKnown(name) {
		l.markDue([]string{name})
	}
}

// markDue (re)starts the settle time of paths.
func (l *watchLoop) markDue(paths []string) {
	at := time.Now().Add(l.fs.settle)
	for _, p := range paths {
		l.due[p] = at
	}
}

// arm sets the timer to the earliest deadline of a path that can be
// checked now.
func (l *watchLoop) arm() {
	var next time.Time
	for p, at := range l.due {
		if !l.busy[p] && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if next.IsZero() {
		l.timer.Stop()
		return
	}
	l.timer.Reset(time.Until(next))
}

// dispatch checks the settled paths, each in its own goroutine so that a
// slow check or reload command does not delay the other files.
func (l *watchLoop) dispatch() {
	now := time.Now()
	for p, at := range l.due {
		if l.busy[p] || at.After(now) {
			continue
		}
		delete(l.due, p)
		l.busy[p] = true
		l.wg.Go(func() {
			l.fs.check(l.ctx, p)
			select {
			case l.done <- p:
			case <-l.ctx.Done():
			}
		})
	}
}

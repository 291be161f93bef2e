package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// restoreEvent is one call of the onRestore hook.
type restoreEvent struct {
	path string
	err  error
	at   time.Time
}

// filesHarness is a Files over a temporary directory, recording restores.
type filesHarness struct {
	t     *testing.T
	dir   string
	files *Files

	mu       sync.Mutex
	restores []restoreEvent
}

func newFilesHarness(t *testing.T, opts ...Option) *filesHarness {
	t.Helper()
	h := &filesHarness{t: t, dir: t.TempDir()}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]Option{WithLogger(log), WithOnRestore(h.onRestore)}, opts...)
	files, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.files = files
	return h
}

func (h *filesHarness) onRestore(path string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.restores = append(h.restores, restoreEvent{path: path, err: err, at: time.Now()})
}

// run starts Run; the test's cleanup stops it and checks that it returned.
func (h *filesHarness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.files.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			h.t.Error("Run did not return after its context was cancelled")
		}
	})
}

// file is the default install settings of name in the harness directory.
func (h *filesHarness) file(name string) templates.File {
	return templates.File{Destination: filepath.Join(h.dir, name), Perms: 0o640}
}

func (h *filesHarness) install(f templates.File, content string, reload ...string) {
	h.t.Helper()
	if _, err := h.files.Install(context.Background(), []byte(content), f, reload, 5*time.Second); err != nil {
		h.t.Fatalf("install %s: %v", f.Destination, err)
	}
}

func (h *filesHarness) restoresOf(path string) []restoreEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var evs []restoreEvent
	for _, ev := range h.restores {
		if ev.path == path {
			evs = append(evs, ev)
		}
	}
	return evs
}

// await runs change and waits for the next restore attempt of path,
// which it returns.
func (h *filesHarness) await(path string, change func()) restoreEvent {
	h.t.Helper()
	before := len(h.restoresOf(path))
	change()
	filesEventually(h.t, "a restore of "+filepath.Base(path), func() bool {
		return len(h.restoresOf(path)) > before
	})
	return h.restoresOf(path)[before]
}

// barrier edits a sentinel file kept in the harness directory and waits
// for its restore: events made before it have been handled by then, so a
// test can assert that something did not happen.
func (h *filesHarness) barrier() {
	h.t.Helper()
	f := h.file("zz-barrier")
	if _, ok := installed(h.files, f.Destination); !ok {
		h.install(f, "barrier\n")
	}
	h.await(f.Destination, func() { handWrite(h.t, f.Destination, "hand edit\n") })
	filesEventually(h.t, "barrier restored", holdsFile(f.Destination, "barrier\n", 0o640))
}

// filesEventually polls cond until it holds, failing the test after 5s; it
// returns how long it took.
func filesEventually(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func handWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readOrEmpty(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func holdsFile(path, content string, perm os.FileMode) func() bool {
	return func() bool {
		st, err := os.Stat(path)
		return err == nil && st.Mode().Perm() == perm && fileHolds(path, []byte(content))
	}
}

func TestFilesRestoresDrift(t *testing.T) {
	const want = "server { listen 80; }\n"
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"edited", func(t *testing.T, path string) {
			handWrite(t, path, "server { listen 8080; }\n")
		}},
		{"appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(f, "# debug")
			f.Close()
		}},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by rename", func(t *testing.T, path string) {
			tmp := filepath.Join(filepath.Dir(path), ".site.conf.swp")
			handWrite(t, tmp, "server { listen 81; }\n")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"mode changed", func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory removed", func(t *testing.T, path string) {
			if err := os.RemoveAll(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory moved away", func(t *testing.T, path string) {
			dir := filepath.Dir(path)
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, early := range []bool{true, false} {
			name := tt.name + map[bool]string{true: "/installed before Run", false: "/installed after Run"}[early]
			t.Run(name, func(t *testing.T) {
				h := newFilesHarness(t)
				f := h.file("conf.d/site.conf")
				if !early {
					h.run()
				}
				h.install(f, want)
				if early {
					h.run()
				}
				start := time.Now()
				ev := h.await(f.Destination, func() { tt.change(t, f.Destination) })
				if ev.err != nil {
					t.Fatalf("restore: %v", ev.err)
				}
				filesEventually(t, "content and mode back", holdsFile(f.Destination, want, 0o640))
				t.Logf("restored after %s", ev.at.Sub(start))

				// Still watched, whatever the change did to the directory.
				start = time.Now()
				ev = h.await(f.Destination, func() { handWrite(t, f.Destination, "edited again\n") })
				if ev.err != nil {
					t.Fatalf("second restore: %v", ev.err)
				}
				filesEventually(t, "content back again", holdsFile(f.Destination, want, 0o640))
				t.Logf("restored again after %s", ev.at.Sub(start))
			})
		}
	}
}

// An editor truncates and writes in several steps; the settle time makes
// it a single restore, to the exact content.
func TestFilesEditorWritesRestoredOnce(t *testing.T) {
	h := newFilesHarness(t, WithSettle(300*time.Millisecond))
	f := h.file("haproxy.cfg")
	want := strings.Repeat("backend api\n  server a 10.0.0.1:80\n", 100)
	h.install(f, want)
	h.run()

	h.await(f.Destination, func() {
		out, err := os.OpenFile(f.Destination, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			fmt.Fprintf(out, "backend edited%d\n", i)
			time.Sleep(10 * time.Millisecond) // a slow editor, not synchronisation
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	})
	h.barrier()
	if got := readOrEmpty(t, f.Destination); got != want {
		t.Fatalf("content after restore: %q", got)
	}
	if evs := h.restoresOf(f.Destination); len(evs) != 1 || evs[0].err != nil {
		t.Fatalf("restores: %+v, want one without error", evs)
	}
}

func TestFilesNewInstallIsNotUndone(t *testing.T) {
	h := newFilesHarness(t)
	f := h.file("site.conf")
	h.install(f, "v1\n")
	h.run()
	changed, err := h.files.Install(context.Background(), []byte("v2\n"), f, nil, 0)
	if err != nil || !changed {
		t.Fatalf("Install v2: changed %v, %v", changed, err)
	}
	// An event that changes nothing: the file is compared, not restored.
	now := time.Now()
	if err := os.Chtimes(f.Destination, now, now); err != nil {
		t.Fatal(err)
	}
	h.barrier()
	if got := readOrEmpty(t, f.Destination); got != "v2\n" {
		t.Fatalf("content: %q, want v2", got)
	}
	if evs := h.restoresOf(f.Destination); len(evs) != 0 {
		t.Fatalf("restored after an install: %+v", evs)
	}

	h.await(f.Destination, func() { handWrite(t, f.Destination, "hand edit\n") })
	if got := readOrEmpty(t, f.Destination); got != "v2\n" {
		t.Fatalf("restored %q, want v2", got)
	}
	if got, ok := installed(h.files, f.Destination); !ok || string(got) != "v2\n" {
		t.Fatalf("Installed: %q, %v", got, ok)
	}
}

// Installs racing with hand edits: the last install wins, never an older
// content put back by a restore.
func TestFilesInstallsRaceWithEdits(t *testing.T) {
	h := newFilesHarness(t, WithSettle(time.Millisecond))
	f := h.file("site.conf")
	h.run()
	const installs = 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := range installs {
			if _, err := h.files.Install(context.Background(), fmt.Appendf(nil, "v%d\n", i), f, nil, 0); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Ignore errors: the file may be mid-rename.
			os.WriteFile(f.Destination, fmt.Appendf(nil, "hand %d\n", i), 0o644)
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()

	last := fmt.Sprintf("v%d\n", installs-1)
	filesEventually(t, "last install in place", holdsFile(f.Destination, last, 0o640))
	h.barrier()
	if got := readOrEmpty(t, f.Destination); got != last {
		t.Fatalf("content: %q, want %q", got, last)
	}
	if got, _ := installed(h.files, f.Destination); string(got) != last {
		t.Fatalf("Installed: %q, want %q", got, last)
	}
}

func TestFilesForget(t *testing.T) {
	h := newFilesHarness(t)
	a, b := h.file("a/a.conf"), h.file("b/b.conf")
	h.install(a, "a\n")
	h.install(b, "b\n")
	h.run()

	h.files.Forget(a.Destination)
	if _, ok := installed(h.files, a.Destination); ok {
		t.Error("Installed after Forget")
	}
	if slices.Contains(h.files.w.WatchList(), filepath.Dir(a.Destination)) {
		t.Error("directory of the last forgotten path still watched")
	}
	handWrite(t, a.Destination, "hand edit\n")
	h.await(b.Destination, func() { handWrite(t, b.Destination, "hand edit\n") })
	h.barrier()
	if got := readOrEmpty(t, a.Destination); got != "hand edit\n" {
		t.Fatalf("forgotten file restored: %q", got)
	}
	if evs := h.restoresOf(a.Destination); len(evs) != 0 {
		t.Fatalf("restores of a forgotten file: %+v", evs)
	}
}

func TestFilesReloadAfterRestoreOnly(t *testing.T) {
	h := newFilesHarness(t)
	counter := filepath.Join(h.dir, "reloads")
	reload := []string{"sh", "-c", "echo x >> " + counter}
	reloads := func() int { return strings.Count(readOrEmpty(t, counter), "x") }
	f := h.file("site.conf")
	h.install(f, "v1\n", reload...)
	h.run()
	h.install(f, "v1\n", reload...)
	h.install(f, "v2\n", reload...)
	if n := reloads(); n != 0 {
		t.Fatalf("%d reloads after installs, want none", n)
	}

	if ev := h.await(f.Destination, func() { handWrite(t, f.Destination, "hand edit\n") }); ev.err != nil {
		t.Fatal(ev.err)
	}
	if n := reloads(); n != 1 {
		t.Fatalf("%d reloads after a restore, want 1", n)
	}

	// The mode alone is put back without a reload: the service reads the
	// same content.
	h.await(f.Destination, func() {
		if err := os.Chmod(f.Destination, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	filesEventually(t, "mode back", holdsFile(f.Destination, "v2\n", 0o640))
	h.barrier()
	if n := reloads(); n != 1 {
		t.Fatalf("%d reloads after a mode restore, want still 1", n)
	}
}

func TestFilesRestoreCheckFails(t *testing.T) {
	h := newFilesHarness(t)
	blocker := filepath.Join(h.dir, "blocker")
	f := h.file("site.conf")
	f.Check = []string{"sh", "-c", "test ! -e " + blocker + " && grep -q good " + manifest.StagedPlaceholder}
	h.install(f, "good\n")
	h.run()

	handWrite(t, blocker, "")
	ev := h.await(f.Destination, func() { handWrite(t, f.Destination, "hand edit\n") })
	if !errors.Is(ev.err, templates.ErrCheckFailed) {
		t.Fatalf("restore error: %v, want %v", ev.err, templates.ErrCheckFailed)
	}
	if got := readOrEmpty(t, f.Destination); got != "hand edit\n" {
		t.Fatalf("content after a failed check: %q", got)
	}

	// Tried again on the next event, and the check of the known-good
	// content passes.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	handWrite(t, f.Destination, "hand edit 2\n")
	filesEventually(t, "restored", holdsFile(f.Destination, "good\n", 0o640))
	filesEventually(t, "a successful restore reported", func() bool {
		evs := h.restoresOf(f.Destination)
		return evs[len(evs)-1].err == nil
	})
}

func TestFilesFailedFirstInstallIsNotKept(t *testing.T) {
	h := newFilesHarness(t)
	h.run()
	f := h.file("sub/site.conf")
	f.Check = []string{"false"}
	_, err := h.files.Install(context.Background(), []byte("x\n"), f, nil, 0)
	if !errors.Is(err, templates.ErrCheckFailed) {
		t.Fatalf("Install: %v, want %v", err, templates.ErrCheckFailed)
	}
	if _, ok := installed(h.files, f.Destination); ok {
		t.Error("Installed after a failed install")
	}
	if w := h.files.w.WatchList(); len(w) != 0 {
		t.Errorf("watches after a failed install: %v", w)
	}
}

// A change made before Run starts has events Run reads later, or none if
// the watcher lost them; either way it is restored.
func TestFilesRestoresChangesBeforeRun(t *testing.T) {
	h := newFilesHarness(t)
	f := h.file("site.conf")
	h.install(f, "v1\n")
	handWrite(t, f.Destination, "hand edit\n")
	h.await(f.Destination, h.run)
	filesEventually(t, "restored", holdsFile(f.Destination, "v1\n", 0o640))
}

func TestFilesRechecksAfterWatcherError(t *testing.T) {
	h := newFilesHarness(t)
	f := h.file("site.conf")
	h.install(f, "v1\n")
	h.run()
	h.barrier()
	// Lose the events of an edit, as an overflowing queue would.
	if err := h.files.w.Remove(h.dir); err != nil {
		t.Fatal(err)
	}
	handWrite(t, f.Destination, "hand edit\n")
	h.await(f.Destination, func() { h.files.w.Errors <- fsnotify.ErrEventOverflow })
	filesEventually(t, "restored", holdsFile(f.Destination, "v1\n", 0o640))
}

// Run leaves nothing running: a reload in progress is stopped with it.
func TestFilesRunWaitsForRestores(t *testing.T) {
	h := newFilesHarness(t)
	started := filepath.Join(h.dir, "started")
	f := h.file("site.conf")
	h.install(f, "v1\n", "sh", "-c", "touch "+started+"; sleep 30")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.files.Run(ctx) }()
	handWrite(t, f.Destination, "hand edit\n")
	filesEventually(t, "reload started", func() bool { _, err := os.Stat(started); return err == nil })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	// The reload's attempt was reported before Run returned.
	if evs := h.restoresOf(f.Destination); len(evs) != 1 || !errors.Is(evs[0].err, templates.ErrCommand) {
		t.Fatalf("restores: %+v, want one failed reload", evs)
	}
}

// BenchmarkRestore measures from a hand edit to the restore of the file,
// with the default settle time and without one.
func BenchmarkRestore(b *testing.B) {
	for _, settle := range []time.Duration{DefaultSettle, 0} {
		b.Run("settle="+settle.String(), func(b *testing.B) {
			restored := make(chan error, 16)
			files, err := New(WithSettle(settle),
				WithLogger(slog.New(slog.DiscardHandler)),
				WithOnRestore(func(_ string, err error) {
					select {
					case restored <- err:
					default: // never block Run
					}
				}))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- files.Run(ctx) }()
			defer func() { cancel(); <-done }()
			f := templates.File{Destination: filepath.Join(b.TempDir(), "site.conf"), Perms: 0o640}
			want := bytes.Repeat([]byte("server { listen 80; }\n"), 200)
			if _, err := files.Install(ctx, want, f, nil, 0); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				handWrite(b, f.Destination, "hand edit\n")
				if err := <-restored; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// installed returns the content last installed at path.
func installed(fs *Files, path string) (content []byte, ok bool) {
	fs.do(func(st *watchState) {
		var want expectation
		if want, ok = st.kept[filepath.Clean(path)]; ok {
			content = bytes.Clone(want.content)
		}
	})
	return content, ok
}

// fileHolds reports whether path has exactly content.
func fileHolds(path string, content []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, content)
}

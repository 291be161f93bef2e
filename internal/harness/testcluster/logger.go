package testcluster

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// Logger is a debug logger for the parts a test runs, labelled with who.
// Its lines go to the test's own output, which go test shows only when the
// test fails (or with -v), so a CI failure carries the story of the parts;
// PATCHBAY_TEST_LOGS=1 sends them to stderr as they happen instead.
//
// Lines logged after the test's cleanups began are dropped: a goroutine
// the test stops in a cleanup may still log on its way out, and the test's
// output must not be written once the test has returned.
func Logger(t testing.TB, who string) *slog.Logger {
	var w io.Writer = os.Stderr
	if os.Getenv("PATCHBAY_TEST_LOGS") == "" {
		w = newTestWriter(t)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who)
}

type testWriter struct {
	mu  sync.Mutex
	out io.Writer // nil once the test's cleanups began
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{out: t.Output()}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.out = nil
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.out != nil {
		_, _ = w.out.Write(p) // the test's output: nothing to do on failure
	}
	return len(p), nil
}

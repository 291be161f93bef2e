package main

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/patchbay/patchbay/listener"
)

// recordingController stands in for the daemon behind a real control
// endpoint: what is tested is that the commands reach it.
type recordingController struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingController) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}
func (r *recordingController) Pause()                  { r.record("pause") }
func (r *recordingController) Resume()                 { r.record("resume") }
func (r *recordingController) Provision()              { r.record("provision") }
func (r *recordingController) Report() listener.Report { return listener.Report{Node: "test"} }
func (r *recordingController) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// startControlServer runs a real control endpoint on a free port until the
// test ends and returns its address.
func startControlServer(t *testing.T, c listener.Controller) string {
	t.Helper()
	return startControlAt(t, c, "127.0.0.1:0")
}

// startControlAt runs a real control endpoint at listen until the test ends
// and returns the address it serves.
func startControlAt(t *testing.T, c listener.Controller, listen string) string {
	t.Helper()
	s := listener.NewControlServer(c, listener.NewMetrics(), listener.WithControlLogger(discardLogger()))
	if _, err := s.Listen(listen); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s.Addr()
}

func TestControlCommands(t *testing.T) {
	t.Setenv("PATCHBAY_CONTROL", "")
	rec := &recordingController{}
	addr := startControlServer(t, rec)
	closed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	sock := startControlAt(t, rec, "unix://"+filepath.Join(t.TempDir(), "listener.sock"))
	// Something that answers HTTP but is no listener.
	other := startHTTP(t, http.NotFoundHandler())

	tests := []struct {
		name   string
		env    string // PATCHBAY_CONTROL
		args   []string
		code   int
		stdout string
		stderr string
		call   string
	}{
		{"pause", "", []string{"pause", "--control", addr}, 0, "paused the listener at " + addr + "; triggers are remembered until resume", "", "pause"},
		{"resume", "", []string{"resume", "--control", addr}, 0, "resumed the listener at " + addr, "", "resume"},
		{"provision", "", []string{"provision", "--control", addr}, 0, "asked the listener at " + addr + " for a provision run", "", "provision"},
		{"unix socket", "", []string{"pause", "--control", sock}, 0, "paused the listener at " + sock, "", "pause"},
		{"unix socket from the environment", sock, []string{"provision"}, 0, "asked the listener at " + sock, "", "provision"},
		{"no socket", "", []string{"pause", "--control", "unix:///nonexistent/listener.sock"}, 2, "", "cannot reach a listener's control endpoint at unix:///nonexistent/listener.sock", ""},
		{"relative socket", "", []string{"pause", "--control", "unix://listener.sock"}, 1, "", "must be absolute", ""},
		{"as a URL", "", []string{"provision", "--control", "http://" + addr}, 0, "asked the listener at http://" + addr, "", "provision"},
		{"from the environment", addr, []string{"pause"}, 0, "paused the listener at " + addr, "", "pause"},
		{"flag over environment", closed, []string{"resume", "--control", addr}, 0, "resumed the listener at " + addr, "", "resume"},
		{"closed port", "", []string{"pause", "--control", closed}, 2, "",
			"cannot reach a listener's control endpoint at " + closed + ": connect: connection refused; is `patchbay listen` running? set --control to its control address", ""},
		{"closed port from the environment", closed, []string{"provision"}, 2, "", "control endpoint at " + closed, ""},
		{"not a listener", "", []string{"pause", "--control", other}, 2, "", "answered 404 Not Found to POST /pause", ""},
		{"not an address", "", []string{"pause", "--control", "ftp://x"}, 1, "", `--control "ftp://x" is not an address`, ""},
		{"arguments", "", []string{"pause", "now"}, 1, "", `unexpected argument "now": patchbay pause takes no arguments`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATCHBAY_CONTROL", tt.env)
			before := len(rec.Calls())
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if code == 2 && strings.Count(stderr, "\n") != 1 {
				t.Fatalf("want a one-line error, got:\n%s", stderr)
			}
			calls := rec.Calls()[before:]
			if tt.call == "" && len(calls) > 0 || tt.call != "" && !slices.Equal(calls, []string{tt.call}) {
				t.Fatalf("calls %v, want %q", calls, tt.call)
			}
		})
	}
}

// startHTTP serves h on a free loopback port until the test ends.
func startHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }() // ends at Close
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func TestControlHelp(t *testing.T) {
	for _, name := range []string{"pause", "resume", "provision", "status", "rollout resume"} {
		t.Run(name, func(t *testing.T) {
			code, stdout, _ := patchbay(t, append(strings.Fields(name), "--help")...)
			if code != 0 || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "patchbay "+name) {
				t.Fatalf("--help: exit %d\n%s", code, stdout)
			}
		})
	}
}

package listener

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// The control endpoint is by default a unix socket of mode 0600: the
// listener's user may pause it and read its status; another local user
// (nobody) cannot connect at all, although every directory on the way is
// open to it.
func TestControlUnixSocket(t *testing.T) {
	if !strings.HasPrefix(DefaultControlAddr, "unix://") {
		t.Errorf("DefaultControlAddr = %q, want a unix socket", DefaultControlAddr)
	}
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { // only the socket's mode may keep nobody out
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "listener.sock")
	r := &recorder{report: Report{Node: "n1"}}
	s := NewControlServer(r, nil, WithControlLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if _, err := s.Listen("unix://" + sock); err != nil {
		t.Fatalf("Listen on a unix socket: %v", err)
	}
	if got := s.Addr(); got != "unix://"+sock {
		t.Errorf("Addr = %q, want unix://%s", got, sock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("the socket is left behind after Serve: %v", err)
		}
	}()

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket of mode 0600", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("socket owned by uid %d, want the listener's %d", st.Uid, os.Geteuid())
	}

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := client.Post("http://localhost/pause", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(r.Calls()) != 1 {
		t.Fatalf("POST /pause as the listener's user: %s, calls %v", resp.Status, r.Calls())
	}

	if os.Geteuid() != 0 {
		msg := "running a client as nobody needs root: run the tests as root (sudo CI=true make test)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg) // CI runs the tests as root: the boundary is tested there, never skipped
		}
		t.Skip(msg)
	}
	curl := testcluster.RequirePrograms(t, "curl")["curl"]
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, req := range [][]string{{"-X", "POST", "http://localhost/pause"}, {"http://localhost/status"}} {
		cmd := exec.Command(curl, append([]string{"-sS", "--unix-socket", sock}, req...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Couldn't connect") {
			t.Errorf("curl %v as nobody: %v\n%s\nwant the connection refused", req, err, out)
		}
	}
	if calls := r.Calls(); len(calls) != 1 {
		t.Errorf("calls %v: nobody's request reached the controller", calls)
	}
}

// GET /status carries the end of a failed test's output only to readers
// the endpoint authenticates: the listener's user on the socket, a token
// holder on TCP. A TCP endpoint without a token, which any local user
// reaches, serves the results and reasons without it.
func TestControlStatusOutputOnlyAuthenticated(t *testing.T) {
	const secret = "TOP-SECRET-CONTENT"
	run := &RunReport{Result: ResultFailed, Services: []ServiceRun{{Service: "app", Result: ResultFailed, Reason: "test t failed: exit status 1",
		Tests: []TestResult{{Name: "t", Output: secret, Error: "exit status 1"}}}}}
	r := &recorder{report: Report{Node: "n1", LastRun: run}}
	tests := []struct {
		name, listen, token string
		want                bool
	}{
		{"tcp without a token", "127.0.0.1:0", "", false},
		{"tcp with a token", "127.0.0.1:0", "tok", true},
		{"unix socket", "unix://" + filepath.Join(t.TempDir(), "l.sock"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewControlServer(r, nil, WithControlLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithControlToken(tt.token))
			if _, err := s.Listen(tt.listen); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()
			defer func() { cancel(); <-served }()
			client, base := http.DefaultClient, "http://"+s.Addr()
			if sock, ok := strings.CutPrefix(s.Addr(), "unix://"); ok {
				client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				}}}
				base = "http://localhost"
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/status", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "exit status 1") {
				t.Fatalf("GET /status: %s %s", resp.Status, body)
			}
			if got := strings.Contains(string(body), secret); got != tt.want {
				t.Errorf("/status shows the test's output: %v, want %v\n%s", got, tt.want, body)
			}
		})
	}
	if run.Services[0].Tests[0].Output != secret {
		t.Errorf("serving /status changed the listener's report: %+v", run.Services[0].Tests[0])
	}
}

// A socket another listener serves is not taken over; one left by a killed
// listener, or by this one, is replaced.
func TestControlSocketInUse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "l.sock")
	quiet := WithControlLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	first := NewControlServer(&recorder{}, nil, quiet)
	if _, err := first.Listen("unix://" + sock); err != nil {
		t.Fatal(err)
	}
	second := NewControlServer(&recorder{}, nil, quiet)
	if _, err := second.Listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "another listener serves it") {
		t.Fatalf("Listen on a served socket: %v, want it refused", err)
	}
	first.ln.Close() // as a kill -9 leaves it: the file stays, nobody answers
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Listen("unix://" + sock); err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	second.ln.Close()
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a real unixgram socket standing where systemd's
// NOTIFY_SOCKET would, for daemons this test starts.
type notifySocket struct {
	conn *net.UnixConn
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{conn: conn, msgs: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return // closed at the end of the test
			}
			s.msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	t.Setenv("NOTIFY_SOCKET", path)
	return s
}

// expect waits for a message matching re, skipping WATCHDOG=1 pings
// unless re asks for one, and returns it.
func (s *notifySocket) expect(t *testing.T, re string, deadline time.Duration) string {
	t.Helper()
	want := regexp.MustCompile(re)
	timeout := time.After(deadline)
	var seen []string
	for {
		select {
		case m := <-s.msgs:
			if want.MatchString(m) {
				return m
			}
			if m != "WATCHDOG=1" {
				seen = append(seen, m)
			}
		case <-timeout:
			t.Fatalf("no notification matching %s within %s; got %q", re, deadline, seen)
			return ""
		}
	}
}

// patchbay listen tells systemd when it is ready, reloading and stopping,
// and pings its watchdog; a failed reload says so in STATUS.
func TestListenNotifiesSystemd(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "400000") // 400ms: a ping every 200ms
	c := startListenCluster(t)
	c.publish(t, map[string]string{"sd-a": envManifest("sd-a", "1")})
	n := newListenNode(t, c, "sd-1", true)
	services := fmt.Sprintf("  - service: sd-a\n    port: %d\n", freePort(t))
	n.write(t, services, "")
	d := startListen(t, "--config", n.path)

	sock.expect(t, `^READY=1\nSTATUS=listening; node sd-1$`, 20*time.Second)
	for range 2 {
		sock.expect(t, `^WATCHDOG=1$`, 2*time.Second)
	}

	d.signal(t, syscall.SIGHUP)
	m := sock.expect(t, `^RELOADING=1\nMONOTONIC_USEC=\d+\n?$`, 10*time.Second)
	var usec int64
	if _, err := fmt.Sscanf(strings.Split(m, "\n")[1], "MONOTONIC_USEC=%d", &usec); err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC in %q: %d, %v", m, usec, err)
	}
	sock.expect(t, `^READY=1\nSTATUS=listening; listener.yaml reloaded$`, 10*time.Second)

	if err := os.WriteFile(n.path, []byte(n.config(services, "")+"bogus_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := patchbay(t, "listen", "--config", n.path, "--check-config"); code != 1 || !strings.Contains(stderr, "bogus_key") {
		t.Errorf("listen --check-config of an invalid file: exit %d\n%s", code, stderr)
	}
	d.signal(t, syscall.SIGHUP)
	sock.expect(t, `^RELOADING=1\n`, 10*time.Second)
	sock.expect(t, `^READY=1\nSTATUS=listener.yaml not reloaded, the running config stays: .*bogus_key`, 10*time.Second)

	d.signal(t, syscall.SIGTERM)
	sock.expect(t, `^STOPPING=1\nSTATUS=stopping$`, 10*time.Second)
	if code := d.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// The resolver tells systemd it is ready and stopping.
func TestResolverNotifiesSystemd(t *testing.T) {
	sock := listenNotify(t)
	c := startListenCluster(t)
	d := startDaemon(t, "resolver", "--consul-addr="+c.consul.Addr, "--nats-url="+c.nats.URL, "--name", "sd-resolver")
	sock.expect(t, `^READY=1\nSTATUS=resolving as sd-resolver$`, 20*time.Second)
	d.signal(t, syscall.SIGTERM)
	sock.expect(t, `^STOPPING=1\n`, 10*time.Second)
	if code := d.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// mark sends text to the notify socket after everything sent before it,
// so that reading up to it reads everything the watchdog had sent.
func (s *notifySocket) mark(t *testing.T, text string) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: os.Getenv("NOTIFY_SOCKET"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
}

// until returns the messages before text.
func (s *notifySocket) until(t *testing.T, text string) []string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m == text {
				return got
			}
			got = append(got, m)
		case <-timeout:
			t.Fatalf("mark %q never read; got %q", text, got)
		}
	}
}

// The watchdog pings while the daemon's loop answers, and not while it
// does not: systemd then restarts the daemon.
func TestWatchdogPingsOnlyWhenLoopAnswers(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // a probe every 100ms, answered within 50ms
	var answering atomic.Bool
	answering.Store(true)
	failed := make(chan error, 100)
	alive := func(ctx context.Context) error {
		if answering.Load() {
			return nil
		}
		<-ctx.Done() // a wedged loop never takes the probe
		failed <- ctx.Err()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { notifier{slog.New(slog.DiscardHandler)}.watchdog(ctx, alive) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	for range 2 {
		sock.expect(t, `^WATCHDOG=1$`, 2*time.Second)
	}
	nextFailed := func() error {
		t.Helper()
		select {
		case err := <-failed:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("the watchdog stopped probing")
			return nil
		}
	}
	answering.Store(false)
	nextFailed() // every ping before this probe was sent
	sock.mark(t, "MARK=before")
	sock.until(t, "MARK=before")
	for range 3 {
		if err := nextFailed(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unanswered probe ended with %v", err)
		}
	}
	sock.mark(t, "MARK=after")
	if got := sock.until(t, "MARK=after"); len(got) != 0 {
		t.Fatalf("sent %q while the loop did not answer three probes", got)
	}
	answering.Store(true)
	sock.expect(t, `^WATCHDOG=1$`, 2*time.Second)
}

// The resolver daemon pings the watchdog while its loop answers: here
// standing by (the cluster's own resolver leads), against a real Consul
// and NATS.
func TestResolverPingsWatchdog(t *testing.T) {
	sock := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "400000")
	c := startListenCluster(t)
	d := startDaemon(t, "resolver", "--consul-addr="+c.consul.Addr, "--nats-url="+c.nats.URL, "--name", "sd-resolver")
	sock.expect(t, `^READY=1\nSTATUS=resolving as sd-resolver$`, 20*time.Second)
	for range 2 {
		sock.expect(t, `^WATCHDOG=1$`, 2*time.Second)
	}
	d.signal(t, syscall.SIGTERM)
	// A standby leaves once its blocking lock query returns (2 s at most):
	// consul/api checks the stop channel only between queries.
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/testutil"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// withConnLimit caps the HTTP connections Consul accepts from one client
// address; it answers the next one with 429 Too Many Requests.
func withConnLimit(n int) testcluster.ConsulOption {
	return func(c *testutil.TestServerConfig) {
		c.Args = append(c.Args, "-hcl", fmt.Sprintf("limits { http_max_conns_per_client = %d }", n))
	}
}

// holdConnections opens connections to Consul until it answers a new one
// with 429, and returns what closes them. It needs limit connections of its
// own held: connections an earlier hold closed may still be counted (the
// agent frees them asynchronously), and a hold that leaned on them would
// end the moment the agent caught up. release returns once Consul accepts
// connections again, so the next hold starts from a clean count.
func holdConnections(t *testing.T, addr string, limit int) (release func()) {
	t.Helper()
	var held []net.Conn
	release = func() {
		for _, c := range held {
			c.Close()
		}
		held = nil
		testcluster.Eventually(t, 10*time.Second, "consul accepts connections again", func() bool { return !refused(addr) })
	}
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	testcluster.Eventually(t, 10*time.Second, "consul accepts connections before the hold", func() bool { return !refused(addr) })
	for range 200 {
		// Refused three times running: every held connection is counted
		// (the agent accepts them asynchronously), not just the first ones.
		if len(held) >= limit && refused(addr) && refused(addr) && refused(addr) { //nolint:staticcheck // each call dials anew
			return release
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	t.Fatalf("consul still accepts connections with %d held", len(held))
	return nil
}

// refused reports whether Consul turns a new connection away.
func refused(addr string) bool {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/status/leader HTTP/1.1\r\nHost: consul\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return true // the limiter closed the connection
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusTooManyRequests
}

// Consul answers 429 when a client holds more connections than its
// limits { http_max_conns_per_client }. A command retries with backoff and
// goes on once a connection is free; while none is, it gives up with exit
// 2 and an error that names the 429 and the setting.
func TestConsulTooManyConnections(t *testing.T) {
	const limit = 16
	consul := testcluster.StartConsul(t, withConnLimit(limit))
	addr := "--consul-addr=" + consul.Addr
	dir := writeServices(t, map[string]string{"job": "id: job\nprovides: {JOB_URL: \"http://{HOST}:{PORT}\"}\n"})
	if code, _, stderr := patchbay(t, "publish", addr, dir); code != 0 {
		t.Fatalf("publish: exit %d\n%s", code, stderr)
	}

	t.Run("gives up while the limit stays exceeded", func(t *testing.T) {
		release := holdConnections(t, consul.Addr, limit)
		defer release()
		code, _, stderr := patchbay(t, "datastore", "get", addr, "JOB_DB_URL")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code != 2 || !strings.HasPrefix(last, "patchbay: registry: consul rate limited: read patchbay/registry/datastores/default/JOB_DB_URL: consul at "+consul.Addr+" answered 429 Too Many Requests") ||
			!strings.Contains(last, "limits { http_max_conns_per_client }") {
			t.Fatalf("exit %d (want 2)\nstderr:\n%s", code, stderr)
		}
		if retries := strings.Count(stderr, "consul answered 429 Too Many Requests; retrying"); retries != 5 {
			t.Fatalf("%d retries logged, want 5:\n%s", retries, stderr)
		}
	})

	// The refusal itself, its retries and its message are the subtest
	// above's. This one holds every connection while register starts, frees
	// them once register has met a refusal (or after 10 s: when Consul's
	// 429 lands on a connection before Go's client wrote its request, Go
	// retries without a word), and asserts that register goes on.
	t.Run("register goes on once a connection is free", func(t *testing.T) {
		release := holdConnections(t, consul.Addr, limit)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stdout, stderr syncBuffer
		exit := make(chan int, 1)
		go func() { // ends when ctx is cancelled below
			exit <- run(ctx, []string{"register", addr, "job", "--node", "job-1", "--address", "127.0.0.1", "--port", "8081"}, &stdout, &stderr)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stderr.String(), "429") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling stderr, bounded by the deadline
		}
		if strings.Contains(stdout.String(), "registered job@job-1:8081") {
			t.Fatalf("register went through while every connection was held\nstdout:\n%s", stdout.String())
		}
		release()
		testcluster.Eventually(t, 15*time.Second, "registered", func() bool { return strings.Contains(stdout.String(), "registered job@job-1:8081") })
		cancel()
		if code := <-exit; code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	})
}

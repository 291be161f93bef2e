// Package testcluster starts the real servers patchbay's integration tests
// run against: a Consul agent (the binary built from tools/consul) and an
// embedded NATS server, each on free loopback ports and stopped when the
// test ends.
//
// With CI=true a missing Consul binary fails the test; elsewhere the test is
// skipped with a message saying how to build it. PATCHBAY_TEST_CONSUL_LOGS=1
// shows the agent's own log.
package testcluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/testutil"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Consul is a running Consul agent in dev-server mode.
type Consul struct {
	Server *testutil.TestServer
	Client *api.Client
	Addr   string // host:port of the HTTP API

	stopOnce sync.Once
	stopErr  error
}

// Stop stops the agent and removes its data; safe to call more than once.
// A dev agent interrupted exits with status 1 (it shuts down without
// leaving its one-node cluster): that is a clean stop here.
func (c *Consul) Stop() error {
	c.stopOnce.Do(func() {
		var exit *exec.ExitError
		if err := c.Server.Stop(); err != nil && !errors.As(err, &exit) {
			c.stopErr = err
		}
	})
	return c.stopErr
}

// ConsulOption changes the test agent's configuration.
type ConsulOption func(*testutil.TestServerConfig)

// WithACLs enables ACLs with a default-deny policy; rootToken is the
// initial management token (and the agent's own).
func WithACLs(rootToken string) ConsulOption {
	return func(c *testutil.TestServerConfig) {
		c.ACL.Enabled = true
		c.ACL.DefaultPolicy = "deny"
		c.ACL.Tokens.InitialManagement = rootToken
		c.ACL.Tokens.Agent = rootToken
	}
}

// AgentNode is the Consul node name of every test agent. One agent serves
// every simulated patchbay node of a test, so its sessions hold instances
// of nodes other than its own, which patchbay counts as live only on a
// node named in $PATCHBAY_SHARED_AGENT_NODES (registry.SharedAgentsEnv).
const AgentNode = "patchbay-test-agent"

var shareOnce sync.Once

// shareAgentNode names AgentNode in $PATCHBAY_SHARED_AGENT_NODES for the
// test process, unless the environment already says otherwise. Tests of
// the strict rule give their clients registry.WithSharedAgentNodes().
func shareAgentNode() {
	shareOnce.Do(func() {
		if _, set := os.LookupEnv("PATCHBAY_SHARED_AGENT_NODES"); !set {
			_ = os.Setenv("PATCHBAY_SHARED_AGENT_NODES", AgentNode)
		}
	})
}

// consulStartAttempts is how many agents StartConsul starts before it
// gives up on one answering.
const consulStartAttempts = 3

// StartConsul starts a Consul agent, waits for it to elect itself leader and
// stops it when the test ends.
func StartConsul(t testing.TB, opts ...ConsulOption) *Consul {
	t.Helper()
	RequireConsulBinary(t)
	shareAgentNode()
	configure := func(c *testutil.TestServerConfig) {
		c.LogLevel = "warn"
		c.NodeName = AgentNode
		if os.Getenv("PATCHBAY_TEST_CONSUL_LOGS") == "" {
			c.Stdout, c.Stderr = io.Discard, io.Discard
		}
		for _, opt := range opts {
			opt(c)
		}
	}
	// The SDK gives a new agent 2 s to answer HTTP, then stops it and
	// returns an error, for the caller to try again: a loaded machine (the
	// race detector, packages tested side by side) can take longer.
	var srv *testutil.TestServer
	var err error
	for attempt := 1; ; attempt++ {
		if srv, err = testutil.NewTestServerConfigT(t, configure); err == nil {
			break
		}
		if attempt == consulStartAttempts {
			t.Fatalf("start consul: %v (%d attempts)", err, attempt)
		}
		t.Logf("start consul: %v; trying again (attempt %d of %d)", err, attempt+1, consulStartAttempts)
	}
	c := &Consul{Server: srv, Addr: srv.HTTPAddr}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop consul: %v", err)
		}
	})
	srv.WaitForLeader(t)
	c.Client, err = api.NewClient(&api.Config{Address: srv.HTTPAddr, Token: srv.Config.ACL.Tokens.InitialManagement})
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}
	waitReady(t, srv)
	return c
}

// waitReady returns once the agent accepts its management token (a new
// leader sets ACLs up after its election) and lists its own service (tests
// look it up). It asks through a transport of its own, closed after, so
// that no idle connection of the test process counts against the agent's
// per-client connection limit.
func waitReady(t testing.TB, srv *testutil.TestServer) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	probe, err := api.NewClient(&api.Config{Address: srv.HTTPAddr, Token: srv.Config.ACL.Tokens.InitialManagement, Transport: tr})
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}
	if srv.Config.ACL.Enabled {
		Eventually(t, 30*time.Second, "consul accepts the management token", func() bool {
			_, _, err := probe.ACL().TokenReadSelf(nil)
			return err == nil
		})
	}
	Eventually(t, 30*time.Second, "consul lists its own service", func() bool {
		entries, _, err := probe.Health().Service("consul", "", true, nil)
		return err == nil && len(entries) > 0
	})
}

// CreateToken makes an ACL token with a policy of the given rules and
// returns its secret.
func CreateToken(t testing.TB, c *Consul, rootToken, rules string) string {
	t.Helper()
	w := &api.WriteOptions{Token: rootToken}
	policy, _, err := c.Client.ACL().PolicyCreate(&api.ACLPolicy{Name: fmt.Sprintf("test-%d", time.Now().UnixNano()), Rules: rules}, w)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	token, _, err := c.Client.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}}}, w)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return token.SecretID
}

var (
	binaryOnce sync.Once
	binaryErr  error
)

// RequireConsulBinary makes sure a consul binary is on PATH, adding the
// repository's bin/ (where `make consul` builds it) when needed.
func RequireConsulBinary(t testing.TB) {
	t.Helper()
	binaryOnce.Do(func() { binaryErr = findConsulBinary() })
	if binaryErr == nil {
		return
	}
	msg := fmt.Sprintf("%v; build it with `make consul` (or run the tests with `make test`)", binaryErr)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func findConsulBinary() error {
	if _, err := exec.LookPath("consul"); err == nil {
		return nil
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("consul binary not on PATH")
	}
	bin := filepath.Join(filepath.Dir(self), "..", "..", "..", "bin")
	if _, err := os.Stat(filepath.Join(bin, "consul")); err != nil {
		return fmt.Errorf("consul binary neither on PATH nor at %s", filepath.Clean(bin))
	}
	return os.Setenv("PATH", filepath.Clean(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// NATS is a running embedded NATS server.
type NATS struct {
	Server *natsserver.Server
	URL    string
}

// Stop shuts the server down and waits until it is gone; safe to call more
// than once.
func (n *NATS) Stop() {
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}

// StartNATS starts an embedded NATS server on a free loopback port and
// stops it when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{Server: startNATS(t, natsserver.RANDOM_PORT)}
	n.URL = n.Server.ClientURL()
	t.Cleanup(func() { n.Stop() })
	return n
}

// Restart stops the server and starts a new one on the same port, as an
// operator restarting NATS would.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	port := n.Server.Addr().(*net.TCPAddr).Port
	n.Stop()
	n.Server = startNATS(t, port)
}

func startNATS(t testing.TB, port int) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go srv.Start() // returns at once; the server runs its own goroutines, ended by Shutdown
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	return srv
}

// WaitClosed polls until nothing accepts connections at addr, or fails the
// test after the deadline.
func WaitClosed(t testing.TB, addr string, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		_ = conn.Close() // only dialled to see it still accepts
		if time.Now().After(end) {
			t.Fatalf("%s still accepts connections %s after stop", addr, deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TCPBackend accepts and closes TCP connections on a free loopback port
// until the test ends, standing in for a service behind a TCP health
// check. It returns the port.
func TCPBackend(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() }) // ends the accept loop below; nothing else to report
	go func() {                         // ends when the listener closes at cleanup
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = conn.Close() // accepted only to be closed
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// Eventually polls cond until it holds, failing the test if it does not
// within deadline (what names the awaited state); it returns how long it
// took, for tests that report a figure.
func Eventually(t testing.TB, deadline time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > deadline {
			t.Fatalf("%s: not within %s", what, deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

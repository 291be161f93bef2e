package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// gate is a proxy in front of Consul that, once armed, holds every session
// read until released: a Consul slow to answer, made deterministic.
type gate struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // one send per held request
	release chan struct{}
}

func startGate(t *testing.T, consulAddr string) (*gate, string) {
	t.Helper()
	g := &gate{entered: make(chan struct{}, 8), release: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: consulAddr})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		hold := g.armed && strings.HasPrefix(r.URL.Path, "/v1/session/info/")
		g.mu.Unlock()
		if hold {
			g.entered <- struct{}{}
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

func (g *gate) arm() { g.mu.Lock(); g.armed = true; g.mu.Unlock() }

// The candidate's lock is never held across a call to Consul: Close
// finishes while an Acquire is stuck reading its session, and the Acquire
// then ends instead of registering the candidacy again behind its back.
func TestCandidateCloseNotBlockedBySessionRead(t *testing.T) {
	consul := testcluster.StartConsul(t)
	g, addr := startGate(t, consul.Addr)
	c := newClient(t, consul, WithAddress(addr))
	ctx := t.Context()
	cand, err := c.Campaign(ctx, "resolver", "slow")
	if err != nil {
		t.Fatal(err)
	}
	lead, err := cand.Acquire(ctx) // creates the session
	if err != nil {
		t.Fatal(err)
	}
	if err := lead.Release(); err != nil {
		t.Fatal(err)
	}

	g.arm()
	acquired := make(chan error, 1)
	go func() { // owned by the test: waited for through acquired
		_, err := cand.Acquire(ctx)
		acquired <- err
	}()
	<-g.entered // the Acquire is inside the session read now

	closed := make(chan error, 1)
	go func() { closed <- cand.Close(context.Background()) }() // waited for below
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second): // a deadline for failing, not a wait for success
		close(g.release)
		<-closed
		<-acquired
		t.Fatal("Close waited behind a session read: the candidate's lock is held across a call to Consul")
	}
	close(g.release)
	if err := <-acquired; err == nil {
		t.Fatal("Acquire after Close led; want it to end")
	}
	services, err := consul.Client.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services["patchbay-resolver-slow"]; ok {
		t.Fatal("the closed candidacy is registered again")
	}
}

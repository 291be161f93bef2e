package testcluster

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// ConsulProxy is a reverse proxy in front of a Consul agent that counts the
// requests passing through it, by method and path: tests point one client
// at it to measure what that client asks of Consul.
type ConsulProxy struct {
	Addr string // host:port to give a client instead of the agent's

	mu    sync.Mutex
	count map[string]int // "PUT /v1/txn"
}

// StartConsulProxy proxies to the agent at target (host:port) until the
// test ends.
func StartConsulProxy(t testing.TB, target string) *ConsulProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ConsulProxy{Addr: ln.Addr().String(), count: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.count[r.Method+" "+r.URL.Path]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return p
}

// Requests returns the requests so far, by "METHOD /path".
func (p *ConsulProxy) Requests() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.count))
	for k, v := range p.count {
		out[k] = v
	}
	return out
}

// Total is the number of requests so far.
func (p *ConsulProxy) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.count {
		n += v
	}
	return n
}

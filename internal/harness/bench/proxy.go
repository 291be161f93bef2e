package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Class is the kind of a Consul request, as the counting proxy sees it.
type Class int

// The classes of Consul requests.
const (
	Blocking Class = iota // a read with index=: a long poll held by the servers
	Read                  // any other read, a read-only transaction included
	Write                 // a KV, session or catalog write, or a transaction with one: a Raft write
	Agent                 // /v1/agent/...: answered by the local agent
	numClasses
)

var classNames = [numClasses]string{"blocking", "read", "write", "agent"}

func (c Class) String() string { return classNames[c] }

// txnReadVerbs are the verbs of a transaction operation that change nothing.
var txnReadVerbs = map[string]bool{
	"get": true, "get-or-empty": true, "get-tree": true,
	"check-index": true, "check-session": true, "check-not-exists": true,
}

// Classify tells the class of a request from its method, path, query and,
// for /v1/txn, its body: a transaction is a write when one of its
// operations is.
func Classify(method, path string, query url.Values, body []byte) Class {
	switch {
	case strings.HasPrefix(path, "/v1/agent/"):
		return Agent
	case path == "/v1/txn":
		if txnWrites(body) {
			return Write
		}
		return Read
	case method != http.MethodGet && method != http.MethodHead:
		return Write
	case query.Has("index"):
		return Blocking
	}
	return Read
}

// txnWrites reports whether a transaction body holds an operation that is
// not a read; a body it cannot parse counts as a write, the costlier guess.
func txnWrites(body []byte) bool {
	// Each operation is an object with one non-null member (KV, Node,
	// Service, Check); consul/api sends the others as null.
	var ops []map[string]*struct {
		Verb string `json:"Verb"`
	}
	if err := json.Unmarshal(body, &ops); err != nil {
		return true
	}
	for _, op := range ops {
		for _, o := range op {
			if o != nil && !txnReadVerbs[o.Verb] {
				return true
			}
		}
	}
	return false
}

// Counts are the requests a proxy passed on, by class.
type Counts [numClasses]int

// Total is the number of requests of every class.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Sub is c minus an earlier snapshot.
func (c Counts) Sub(earlier Counts) Counts {
	for i := range c {
		c[i] -= earlier[i]
	}
	return c
}

// Proxy is a reverse proxy in front of Consul that counts what passes.
type Proxy struct {
	Name string
	Addr string // host:port it listens on

	srv  *http.Server
	done chan struct{} // closed when Serve has returned

	mu     sync.Mutex
	counts Counts
	byPath map[string]int // "PUT /v1/kv/patchbay/status": count, for the JSON
}

// maxTxnBody bounds what the proxy reads of a transaction to classify it;
// Consul refuses bigger ones anyway.
const maxTxnBody = 1 << 20

// StartProxy listens on a free loopback port and forwards to consulAddr
// until Close.
func StartProxy(name, consulAddr string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: proxy %s: %w", name, err)
	}
	target := &url.URL{Scheme: "http", Host: consulAddr}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        10000,
		MaxIdleConnsPerHost: 10000,
		IdleConnTimeout:     90 * time.Second,
	}
	// A client that gives up on a long poll (a consumer stopping) is
	// routine; anything else reaches the client as a 502 anyway.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &Proxy{Name: name, Addr: ln.Addr().String(), byPath: map[string]int{}, done: make(chan struct{})}
	p.srv = &http.Server{Handler: p.count(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() { // ended by Close, which waits for it
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// count classifies and counts each request before passing it on.
func (p *Proxy) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.URL.Path == "/v1/txn" && r.Body != nil {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxTxnBody))
			if err != nil {
				http.Error(w, "bench proxy: read body: "+err.Error(), http.StatusBadGateway)
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
		}
		c := Classify(r.Method, r.URL.Path, r.URL.Query(), body)
		p.mu.Lock()
		p.counts[c]++
		p.byPath[pathKey(r.Method, r.URL.Path)]++
		p.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// pathKey groups requests by method and the first segments of their path,
// so that per-node, per-instance and per-session paths fall together.
func pathKey(method, path string) string {
	parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 5)
	if len(parts) > 4 {
		parts = parts[:4]
	}
	for i, p := range parts {
		if len(p) == 36 && strings.Count(p, "-") == 4 {
			parts[i] = "ID"
		}
	}
	return method + " /" + strings.Join(parts, "/")
}

// Counts is a snapshot of the counters.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// ByPath is a snapshot of the counts by method and path prefix.
func (p *Proxy) ByPath() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.byPath))
	for k, v := range p.byPath {
		m[k] = v
	}
	return m
}

// subPaths is after minus before, without the zeros.
func subPaths(after, before map[string]int) map[string]int {
	m := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			m[k] = d
		}
	}
	return m
}

// Close stops the proxy and its connections, long polls included.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bench: close proxy %s: %w", p.Name, err)
	}
	return nil
}

package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// Errors a caller can act on; every error of this package that means one of
// these wraps it (errors.Is).
var (
	ErrUnreachable      = errkind.New(errkind.Backend, "registry: consul unreachable")
	ErrPermissionDenied = errkind.New(errkind.Backend, "registry: permission denied")
	ErrConflict         = errkind.New(errkind.Input, "registry: conflicting write")
	ErrNotFound         = errkind.New(errkind.Input, "registry: not found")
	ErrUnsupported      = errkind.New(errkind.Input, "registry: not supported")
	// ErrRateLimited: Consul answered 429, refusing the request before
	// reading it. It is not ErrUnreachable: Consul is up and says so, and
	// the fix is its limits, not the address. Every client retries it a few
	// times first (DefaultRateLimitRetries), so callers see it only when the
	// limit stays exceeded.
	ErrRateLimited = errkind.New(errkind.Backend, "registry: consul rate limited")
)

// rateLimitAdvice names the Consul settings behind a 429.
const rateLimitAdvice = "this host holds more connections than Consul's limits { http_max_conns_per_client } allows (default 200), or exceeds its limits { request_limits }; raise the limit or run fewer clients on this host"

// DefaultPrefix is where patchbay keeps its data in Consul KV.
const DefaultPrefix = "patchbay/"

// DefaultTimeout bounds each Consul request that is not a blocking query.
const DefaultTimeout = 10 * time.Second

// Client reads and writes patchbay's data in Consul.
type Client struct {
	consul      *api.Client
	config      *api.Config
	addr        string
	keys        keys
	timeout     time.Duration
	log         *slog.Logger
	rateRetries int
	// sharedAgents are Consul nodes whose agent hosts several patchbay
	// nodes (patchbay dev, tests): their sessions may hold any node's
	// instances.
	sharedAgents map[string]bool
}

// Option configures a Client.
type Option func(*options) error

type options struct {
	config      *api.Config
	prefix      string
	timeout     time.Duration
	log         *slog.Logger
	rateRetries int
	shared      []string
}

// SharedAgentsEnv names the environment variable that gives
// WithSharedAgentNodes's default, a comma-separated list.
const SharedAgentsEnv = "PATCHBAY_SHARED_AGENT_NODES"

// WithSharedAgentNodes names Consul nodes whose one agent serves several
// patchbay nodes, as in patchbay dev and tests: an instance held by a
// session of one of them is live whatever node it names. By default an
// instance is live only while a session of the Consul node it names holds
// its key, which is what stops a node's token from binding as another node;
// never name a production node here. The default is $PATCHBAY_SHARED_AGENT_NODES.
func WithSharedAgentNodes(nodes ...string) Option {
	return func(o *options) error {
		o.shared = nodes
		return nil
	}
}

// WithAddress sets the Consul HTTP address ("127.0.0.1:8500",
// "https://consul:8501"); the default is consul/api's (CONSUL_HTTP_ADDR).
func WithAddress(addr string) Option {
	return func(o *options) error {
		if addr != "" {
			o.config.Address = addr
		}
		return nil
	}
}

// WithToken sets the ACL token; the default is CONSUL_HTTP_TOKEN.
func WithToken(token string) Option {
	return func(o *options) error {
		if token != "" {
			o.config.Token = token
		}
		return nil
	}
}

// WithPrefix sets the KV prefix (default "patchbay/").
func WithPrefix(prefix string) Option {
	return func(o *options) error {
		if prefix == "" || strings.HasPrefix(prefix, "/") {
			return fmt.Errorf("registry: prefix %q: give a relative KV path such as %q", prefix, DefaultPrefix)
		}
		o.prefix = strings.TrimSuffix(prefix, "/") + "/"
		return nil
	}
}

// WithTimeout bounds each non-blocking request (default 10s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("registry: timeout %s: must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// DefaultRateLimitRetries is how many times a request Consul answers with
// 429 is sent again (with exponential backoff, about 5 s in all) before the
// caller sees ErrRateLimited.
const DefaultRateLimitRetries = 5

// New returns a client. TLS and the other consul/api environment variables
// (CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_HTTP_SSL, ...) are honoured.
func New(opts ...Option) (*Client, error) {
	o := options{config: api.DefaultConfig(), prefix: DefaultPrefix, timeout: DefaultTimeout, log: slog.Default(), rateRetries: DefaultRateLimitRetries}
	if env := os.Getenv(SharedAgentsEnv); env != "" {
		o.shared = strings.Split(env, ",")
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if tr := o.config.Transport; tr != nil && tr.DialContext != nil && o.rateRetries > 0 {
		tr.DialContext = sniffingDial(tr.DialContext)
	}
	c, err := api.NewClient(o.config)
	if err != nil {
		return nil, fmt.Errorf("registry: consul client for %s: %w", o.config.Address, err)
	}
	// NewClient made the HTTP client (for a unix socket too) and holds it
	// by pointer: wrapping its transport here covers every request,
	// those inside consul/api's Lock included.
	if hc := o.config.HttpClient; hc != nil && o.rateRetries > 0 {
		hc.Transport = &retry429{next: hc.Transport, retries: o.rateRetries, log: o.log, addr: o.config.Address}
	}
	shared := map[string]bool{}
	for _, n := range o.shared {
		if n = strings.TrimSpace(n); n != "" {
			shared[n] = true
		}
	}
	return &Client{consul: c, config: o.config, addr: o.config.Address, keys: keys{prefix: o.prefix}, timeout: o.timeout, log: o.log, rateRetries: o.rateRetries, sharedAgents: shared}, nil
}

// Address is the Consul address the client talks to.
func (c *Client) Address() string { return c.addr }

// Prefix is the KV prefix the client works under.
func (c *Client) Prefix() string { return c.keys.prefix }

// query returns options for a bounded read and the cancel to release it.
func (c *Client) query(ctx context.Context) (*api.QueryOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx), cancel
}

// write returns options for a bounded write and the cancel to release it.
func (c *Client) write(ctx context.Context) (*api.WriteOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return (&api.WriteOptions{}).WithContext(ctx), cancel
}

// fail wraps a Consul error with what was being done and, where it applies,
// the sentinel that tells the caller what kind of failure it is.
func (c *Client) fail(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	code, body, answered := statusOf(err)
	switch {
	case answered && code == http.StatusForbidden:
		return fmt.Errorf("%w: %s: %s", ErrPermissionDenied, what, c.missingRule(body))
	case answered && code == http.StatusTooManyRequests:
		return fmt.Errorf("%w: %s: consul at %s answered 429 Too Many Requests (%s)%s; %s", ErrRateLimited, what, c.addr, body, c.retried(), rateLimitAdvice)
	case answered && code == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %s: consul at %s refused the value as too large (%s); its kv_max_value_size is below patchbay's limit of %d bytes", ErrInvalid, what, c.addr, body, manifest.MaxSize)
	case answered:
		return fmt.Errorf("%s: consul at %s answered %d: %w", what, c.addr, code, &consulAnswer{code, body})
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	default:
		return fmt.Errorf("%w at %s: %s: %w; check --consul-addr and that the agent is running", ErrUnreachable, c.addr, what, unwrapURLError(err))
	}
}

// consulAnswer is an error Consul answered with, kept so that a caller can
// tell an answer (the servers are reachable) from a failure to reach them.
type consulAnswer struct {
	code int
	body string
}

func (a *consulAnswer) Error() string { return a.body }

// statusText is how consul/api's StatusError prints; its Lock and a few
// other helpers keep only this text (%v), not the StatusError.
var statusText = regexp.MustCompile(`Unexpected response code: (\d{3}) \((.*)\)`)

// statusOf returns the HTTP status Consul answered with, if it answered.
func statusOf(err error) (code int, body string, ok bool) {
	var status api.StatusError
	if errors.As(err, &status) {
		return status.Code, status.Body, true
	}
	if m := statusText.FindStringSubmatch(err.Error()); m != nil {
		code, _ := strconv.Atoi(m[1])
		return code, m[2], true
	}
	return 0, "", false
}

// unwrapURLError drops net/http's repetition of method and URL.
func unwrapURLError(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil || !strings.Contains(err.Error(), "://") {
			return err
		}
		err = next
	}
}

// retried says how often a 429 was retried before giving up.
func (c *Client) retried() string {
	if c.rateRetries == 0 {
		return ""
	}
	return fmt.Sprintf(" %d times in a row", c.rateRetries+1)
}

// retry429 sends a request again, with exponential backoff, while Consul
// answers 429. That is safe for any request, writes included: Consul's
// connection limiter answers 429 before reading the request, and its
// request rate limiter before applying it.
type retry429 struct {
	next    http.RoundTripper
	retries int
	log     *slog.Logger
	addr    string
}

func (t *retry429) RoundTrip(req *http.Request) (*http.Response, error) {
	policy := backoff.NewExponentialBackOff(backoff.WithInitialInterval(200*time.Millisecond), backoff.WithMultiplier(2), backoff.WithMaxInterval(2*time.Second))
	b := backoff.WithContext(backoff.WithMaxRetries(policy, uint64(t.retries)), req.Context())
	for {
		resp, err := t.roundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return resp, nil // the caller reads the 429 and its reason
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close() // drained and dropped; the request is retried
		t.log.Warn("consul answered 429 Too Many Requests; retrying", "consul", t.addr, "request", req.Method+" "+req.URL.Path, "retry_in", wait.Round(time.Millisecond), "hint", "limits { http_max_conns_per_client } of the Consul agent")
		if req, err = rewound(req); err != nil {
			return nil, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
}

// roundTrip sends req once. Consul's connection limiter writes its 429
// the moment it accepts a connection, before the request; net/http reads
// that as an unsolicited answer and fails the request with an opaque error
// ("readLoopPeekFailLocked"). What the connection received tells the two
// apart: such a failure is turned back into the 429 it was.
func (t *retry429) roundTrip(req *http.Request) (*http.Response, error) {
	var conn *sniffConn
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { conn, _ = info.Conn.(*sniffConn) }}
	resp, err := t.next.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err == nil || conn == nil {
		return resp, err
	}
	if early := conn.early429(req); early != nil {
		return early, nil
	}
	return resp, err
}

// sniffConn keeps the first bytes a connection receives.
type sniffConn struct {
	net.Conn
	mu   sync.Mutex
	head []byte
}

const sniffSize = 512 // Consul's 429 is about 200 bytes

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.head) < sniffSize {
		c.head = append(c.head, p[:min(n, sniffSize-len(c.head))]...)
	}
	c.mu.Unlock()
	return n, err
}

// early429 returns the 429 the connection received first, if it did.
func (c *sniffConn) early429(req *http.Request) *http.Response {
	c.mu.Lock()
	head := bytes.Clone(c.head)
	c.mu.Unlock()
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 429 ")) {
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), req)
	if err != nil {
		return nil
	}
	body, _ := io.ReadAll(resp.Body) // what the head holds of it
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// sniffingDial wraps dial so that its connections are sniffConns.
func sniffingDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &sniffConn{Conn: conn}, nil
	}
}

// rewound returns a copy of req whose body reads from the start again.
func rewound(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	next := req.Clone(req.Context())
	next.Body = body
	return next, nil
}

// unlisted returns ErrPermissionDenied when Consul left keys under prefix
// out of a list because the token may not read them. Consul answers such a
// list without a 403, so a reader would otherwise take a denied registry
// for an empty or partial one.
func (c *Client) unlisted(meta *api.QueryMeta, prefix string) error {
	if meta == nil || !meta.ResultsFilteredByACLs {
		return nil
	}
	return fmt.Errorf("%w: list %s: the ACL token may not read some of its keys, which Consul leaves out; add the rule key_prefix %q { policy = \"read\" } to its policy", ErrPermissionDenied, prefix, prefix)
}

// denial is what Consul's "Permission denied" body says was missing:
// "token with AccessorID 'ID' lacks permission 'key:write' on "patchbay/x"".
var denial = regexp.MustCompile(`(anonymous token|token with AccessorID '([^']*)') lacks permission '(\w+):(\w+)'(?: on "([^"]*)")?`)

// missingRule names the token, what it may not do and the ACL rule that
// would allow it, from the body of Consul's 403.
func (c *Client) missingRule(body string) string {
	m := denial.FindStringSubmatch(body)
	if m == nil {
		// No resource named: the token itself is unknown or not yet usable.
		return fmt.Sprintf("consul refused the ACL token: %s; check --consul-token, and \"Consul ACL policy per federation\" in docs/security.md for the rules of each role", body)
	}
	token := "the ACL token (AccessorID '" + m[2] + "')"
	if m[2] == "" {
		token = "the anonymous token (no token was given: set --consul-token or CONSUL_HTTP_TOKEN)"
	}
	resource, access, name := m[3], m[4], m[5]
	return fmt.Sprintf("%s lacks %s:%s on %q; add the rule %s to its policy", token, resource, access, name, c.rule(resource, access, name))
}

// rule is the ACL rule, in Consul's HCL, that grants access to name.
func (c *Client) rule(resource, access, name string) string {
	policy := fmt.Sprintf("{ policy = %q }", access)
	switch {
	case name == "":
		return fmt.Sprintf("%s = %q", resource, access)
	case resource == "key":
		if area, whole := c.keyArea(name); !whole {
			return fmt.Sprintf("key_prefix %q %s", area, policy)
		}
		return fmt.Sprintf("key %q %s", name, policy)
	default: // service, session, node, ...: their names are exact
		return fmt.Sprintf("%s %q %s", resource, name, policy)
	}
}

// federationDepth is, for each top folder of patchbay's layout kept per
// federation, how many segments name the kind of key before the
// federation's: registry/manifests/<fed>/, bindings/<fed>/, ... The others
// (status/<node>, locks/leader/<name>) are per node or name.
var federationDepth = map[string]int{"registry": 2, "indexes": 1, "bindings": 1, "rollout": 1, "locks/unique": 2}

// keyArea is the part of patchbay's layout a key belongs to, down to its
// federation, such as "patchbay/registry/instances/seatgeek/": a rule on it
// serves every key of that kind in that federation and none of another
// federation's, which is what keeps federations apart (PCI). A key kept
// per node or name comes back whole.
func (c *Client) keyArea(key string) (area string, whole bool) {
	rest, ok := strings.CutPrefix(key, c.keys.prefix)
	if !ok {
		return key, true
	}
	segs := strings.Split(rest, "/")
	n, ok := federationDepth[segs[0]]
	if !ok && len(segs) > 1 {
		n, ok = federationDepth[segs[0]+"/"+segs[1]]
	}
	if !ok || len(segs) <= n+1 {
		return key, true
	}
	return c.keys.prefix + strings.Join(segs[:n+1], "/") + "/", false
}

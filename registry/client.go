package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/manifest"
)

// Errors a caller can act on; every error of this package that means one of
// these wraps it (errors.Is).
var (
	ErrUnreachable      = errors.New("registry: consul unreachable")
	ErrPermissionDenied = errors.New("registry: permission denied")
	ErrConflict         = errors.New("registry: conflicting write")
	ErrNotFound         = errors.New("registry: not found")
	ErrUnsupported      = errors.New("registry: not supported")
)

// DefaultPrefix is where patchbay keeps its data in Consul KV.
const DefaultPrefix = "patchbay/"

// DefaultTimeout bounds each Consul request that is not a blocking query.
const DefaultTimeout = 10 * time.Second

// Client reads and writes patchbay's data in Consul.
type Client struct {
	consul  *api.Client
	config  *api.Config
	addr    string
	keys    keys
	timeout time.Duration
	log     *slog.Logger
}

// Option configures a Client.
type Option func(*options) error

type options struct {
	config  *api.Config
	prefix  string
	timeout time.Duration
	log     *slog.Logger
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

// New returns a client. TLS and the other consul/api environment variables
// (CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_HTTP_SSL, ...) are honoured.
func New(opts ...Option) (*Client, error) {
	o := options{config: api.DefaultConfig(), prefix: DefaultPrefix, timeout: DefaultTimeout, log: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(o.config)
	if err != nil {
		return nil, fmt.Errorf("registry: consul client for %s: %w", o.config.Address, err)
	}
	return &Client{consul: c, config: o.config, addr: o.config.Address, keys: keys{prefix: o.prefix}, timeout: o.timeout, log: o.log}, nil
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
	var status api.StatusError
	switch {
	case errors.As(err, &status) && status.Code == http.StatusForbidden:
		return fmt.Errorf("%w: %s: the ACL token may not do this (%s); grant it key_prefix %q write", ErrPermissionDenied, what, status.Body, c.keys.prefix)
	case errors.As(err, &status) && status.Code == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%w: %s: consul at %s refused the value as too large (%s); its kv_max_value_size is below patchbay's limit of %d bytes", ErrInvalid, what, c.addr, status.Body, manifest.MaxSize)
	case errors.As(err, &status):
		return fmt.Errorf("%s: consul at %s answered %d: %s", what, c.addr, status.Code, status.Body)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	default:
		return fmt.Errorf("%w at %s: %s: %v; check --consul-addr and that the agent is running", ErrUnreachable, c.addr, what, unwrapURLError(err))
	}
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

package resolver

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// LocalAddress is where a node's own load balancer listens.
const LocalAddress = "127.0.0.1"

// localClaim is one service providing a key, with its local_port.
type localClaim struct {
	service string
	port    int
}

// selectLocal binds a via-local requirement: every admitted live provider
// becomes a backend of the node's load balancer, and the value names that
// balancer, so it does not change while providers come and go. Datastores
// are not served locally: they are one address already.
func (e *engine) selectLocal(q *query, gs []group) (binding.Var, string) {
	narrowed := q.narrows(gs)
	v := q.emptyVar()
	port, why := e.localPort(q.fed, q.req.Key)
	if why != "" {
		return v, why
	}
	ps := q.listed(gs, narrowed)
	if len(ps) == 0 {
		return v, e.why(q, nil, narrowed)
	}
	val, mode, err := LocalValue(ps[0].Value, port)
	if err != nil {
		// The value is not quoted: it may hold a password.
		return v, fmt.Sprintf("cannot serve %s locally: the value %s provides %v", q.req.Key, ps[0].Instance, err)
	}
	v.Value, v.Providers, v.Resolved = val, ps, true
	v.Local = &binding.LocalRoute{Port: port, Mode: mode}
	return v, ""
}

// localPort returns the one local_port of every published service that
// provides key in fed, or why there is none: the port must be the same
// wherever the key is served, or consumers would change with providers.
func (e *engine) localPort(fed, key string) (int, string) {
	if e.localPorts == nil {
		e.localPorts = map[serviceKey][]localClaim{}
		for _, m := range e.manifests { // sorted by (federation, id)
			for k := range m.Provides {
				sk := serviceKey{manifest.FederationOf(m.Federation), k}
				e.localPorts[sk] = append(e.localPorts[sk], localClaim{m.ID, m.LocalPort})
			}
		}
	}
	claims := e.localPorts[serviceKey{fed, key}]
	if len(claims) == 0 {
		return 0, fmt.Sprintf("no published service provides %s; via: local takes its port from the provider's local_port", key)
	}
	var desc []string
	for _, c := range claims {
		if c.port == 0 {
			return 0, fmt.Sprintf("service %s provides %s but sets no local_port; add local_port: PORT to its manifest to serve %s locally", c.service, key, key)
		}
		desc = append(desc, c.service+" "+strconv.Itoa(c.port))
	}
	if slices.ContainsFunc(claims, func(c localClaim) bool { return c.port != claims[0].port }) {
		return 0, fmt.Sprintf("services providing %s disagree on local_port (%s); give them one port", key, strings.Join(desc, ", "))
	}
	return claims[0].port, ""
}

// ErrLocalValue: a provided value has no address a load balancer can use.
// Its messages never quote the value, which may hold a password.
var ErrLocalValue = errkind.New(errkind.Input, "resolver: value has no host:port")

// errNoHostPort is ErrLocalValue for a value that is neither a URL nor
// host:port; net.SplitHostPort's own error would quote it.
var errNoHostPort = fmt.Errorf("%w: neither a URL with a host nor host:port", ErrLocalValue)

// LocalValue rewrites a provider's value to name the node's load balancer
// at port: the scheme, user info, path and query are kept, so a consumer
// sees the value it would have seen, with only the address changed. An
// http:// URL is balanced per request, anything else per connection.
func LocalValue(value string, port int) (string, string, error) {
	local := net.JoinHostPort(LocalAddress, strconv.Itoa(port))
	if !strings.Contains(value, "://") {
		if !isHostPort(value) {
			return "", "", errNoHostPort
		}
		return local, binding.LocalTCP, nil
	}
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("%w: not a URL with a host", ErrLocalValue)
	}
	mode := binding.LocalTCP
	if u.Scheme == "http" {
		mode = binding.LocalHTTP
	}
	u.Host = local
	return u.String(), mode, nil
}

// BackendAddr returns the host:port a load balancer reaches a provider's
// value at: the URL's host and port (80 or 443 by scheme when it gives
// none), or the value itself when it is host:port.
func BackendAddr(value string) (string, error) {
	if !strings.Contains(value, "://") {
		if !isHostPort(value) {
			return "", errNoHostPort
		}
		return value, nil
	}
	u, err := url.Parse(value)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("%w: not a URL with a host", ErrLocalValue)
	}
	if p := u.Port(); p != "" {
		return u.Host, nil
	}
	switch u.Scheme {
	case "http":
		return net.JoinHostPort(u.Hostname(), "80"), nil
	case "https":
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return "", fmt.Errorf("%w: %s:// URL without a port", ErrLocalValue, u.Scheme)
}

// isHostPort reports whether s is host:port with a port number.
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	return err == nil && host != "" && perr == nil && n > 0 && n < 65536
}

package listener

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/manifest"
)

// Hitless HAProxy: a builtin:haproxy template with options runtime_api:
// "true" and stats_socket has a change that only adds or removes servers
// applied through the runtime API, with no reload; the file is installed
// all the same, so a restart or a later reload gives the same servers. A
// change of anything else (a route, an option, a host name HAProxy would
// have to resolve) reloads, and so does any runtime API failure.

// haproxyDrain bounds the wait for a removed server's connections to end.
const haproxyDrain = 10 * time.Second

// hitless applies a changed file's server changes over HAProxy's runtime
// API and reports whether that replaced the reload.
func (l *Listener) hitless(ctx context.Context, f *rendered) bool {
	opts := f.spec.Options
	if f.spec.Source != manifest.BuiltinPrefix+"haproxy" || opts["runtime_api"] != "true" || l.simulated {
		return false
	}
	log := l.log.With("file", f.file.Destination)
	if opts["stats_socket"] == "" {
		log.Warn("runtime_api needs the stats_socket option; reloading")
		return false
	}
	if !f.existed {
		return false // HAProxy may not run this file yet
	}
	changes, why := diffHAProxy(parseHAProxy(f.previous), parseHAProxy(f.content))
	if why != "" {
		log.Info("HAProxy config changed beyond its servers; reloading", "change", why)
		l.metrics.HAProxyApplied("reload")
		return false
	}
	drain := haproxyDrain
	if d, err := time.ParseDuration(opts["runtime_drain"]); err == nil {
		drain = d
	}
	api := &haproxyAPI{socket: opts["stats_socket"], timeout: 5 * time.Second}
	if err := changes.apply(ctx, api, drain); err != nil {
		log.Warn("HAProxy runtime API failed; reloading instead", "err", err)
		l.metrics.HAProxyApplied("fallback")
		return false
	}
	log.Info("HAProxy servers changed over the runtime API, no reload", "added", changes.added(), "removed", changes.removed())
	l.metrics.HAProxyApplied("runtime")
	return true
}

// haproxyServer is one server line of a backend.
type haproxyServer struct {
	name, addr string
	args       []string // after the address, with the defaults' args first
}

func (s haproxyServer) checked() bool { return slices.Contains(s.args, "check") }

func (s haproxyServer) same(o haproxyServer) bool {
	return s.addr == o.addr && slices.Equal(s.args, o.args)
}

// haproxyLayout is a config split into structure and servers.
type haproxyLayout struct {
	skeleton []string // every line but comments and backend server lines
	backends map[string][]haproxyServer
}

var haproxySections = []string{"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "program", "http-errors", "ring", "mailers", "cache"}

// parseHAProxy reads the lines of a config. A dynamic server inherits
// nothing from default-server, so the server lines of a backend get the
// last defaults section's default-server arguments prepended.
func parseHAProxy(cfg []byte) haproxyLayout {
	lay := haproxyLayout{backends: map[string][]haproxyServer{}}
	var section, backend string
	var defaults []string
	for line := range strings.SplitSeq(string(cfg), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if slices.Contains(haproxySections, f[0]) {
			section, backend = f[0], ""
			if section == "backend" && len(f) > 1 {
				backend = f[1]
			}
		}
		switch {
		case section == "defaults" && f[0] == "default-server":
			defaults = dynamicArgs(f[1:])
		case backend != "" && f[0] == "server" && len(f) >= 3:
			s := haproxyServer{name: f[1], addr: f[2], args: append(slices.Clone(defaults), f[3:]...)}
			lay.backends[backend] = append(lay.backends[backend], s)
			continue
		}
		lay.skeleton = append(lay.skeleton, strings.Join(f, " "))
	}
	return lay
}

// dynamicArgs drops the default-server keywords add server does not take:
// a dynamic server never resolves names (it is added by IP here).
func dynamicArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "init-addr", "resolvers", "resolve-prefer", "resolve-opts", "resolve-net":
			i++ // and its value
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// serverChanges are the runtime commands of one config change.
type serverChanges struct {
	before map[string][]haproxyServer
	add    map[string][]haproxyServer // backend → servers to add
	del    map[string][]string        // backend → server names to delete
}

// diffHAProxy returns the server changes from old to new, or why they
// cannot be applied at runtime.
func diffHAProxy(old, new haproxyLayout) (serverChanges, string) {
	c := serverChanges{before: old.backends, add: map[string][]haproxyServer{}, del: map[string][]string{}}
	if !slices.Equal(old.skeleton, new.skeleton) {
		return c, "structure"
	}
	for _, be := range slices.Sorted(maps.Keys(new.backends)) {
		for _, s := range new.backends[be] {
			i := slices.IndexFunc(old.backends[be], func(o haproxyServer) bool { return o.name == s.name })
			if i >= 0 && old.backends[be][i].same(s) {
				continue
			}
			if host, _, err := net.SplitHostPort(s.addr); err != nil || net.ParseIP(host) == nil {
				return c, fmt.Sprintf("server %s/%s has address %s, which a dynamic server cannot resolve", be, s.name, s.addr)
			}
			if i >= 0 {
				c.del[be] = append(c.del[be], s.name) // changed: replaced
			}
			c.add[be] = append(c.add[be], s)
		}
	}
	for _, be := range slices.Sorted(maps.Keys(old.backends)) {
		for _, o := range old.backends[be] {
			if !slices.ContainsFunc(new.backends[be], func(s haproxyServer) bool { return s.name == o.name }) {
				c.del[be] = append(c.del[be], o.name)
			}
		}
	}
	return c, ""
}

func (c serverChanges) added() int   { return countAll(c.add) }
func (c serverChanges) removed() int { return countAll(c.del) }

func countAll[T any](m map[string][]T) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// apply checks that HAProxy runs the old servers of every backend it
// touches (else the file and the process disagree: reload), then deletes
// replaced servers, adds the new ones and deletes the removed ones last,
// so that a backend never has fewer servers than needed for long.
func (c serverChanges) apply(ctx context.Context, api *haproxyAPI, drain time.Duration) error {
	touched := slices.Sorted(maps.Keys(c.add))
	for be := range c.del {
		if !slices.Contains(touched, be) {
			touched = append(touched, be)
		}
	}
	for _, be := range touched {
		running, err := api.servers(ctx, be)
		if err != nil {
			return err
		}
		var want []string
		for _, s := range c.before[be] {
			want = append(want, s.name)
		}
		if slices.Sort(running); !slices.Equal(running, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("%w: backend %s runs servers %v, the installed file has %v", ErrHAProxyAPI, be, running, want)
		}
	}
	for _, be := range touched {
		for _, s := range c.add[be] {
			if slices.Contains(c.del[be], s.name) {
				if err := api.delServer(ctx, be, s.name, drain); err != nil {
					return err
				}
			}
			if err := api.addServer(ctx, be, s); err != nil {
				return err
			}
		}
	}
	for _, be := range touched {
		for _, name := range c.del[be] {
			if slices.ContainsFunc(c.add[be], func(s haproxyServer) bool { return s.name == name }) {
				continue // replaced above
			}
			if err := api.delServer(ctx, be, name, drain); err != nil {
				return err
			}
		}
	}
	return nil
}

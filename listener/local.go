package listener

// Local routing (DESIGN §5b): requirements a manifest serves via: local
// reach their providers through this node's own HAProxy on 127.0.0.1, at
// the provider's local_port. The consumer's value never changes with its
// providers; this file keeps HAProxy's servers following them, over the
// runtime API, and reloads only when a frontend comes or goes.

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
	"github.com/patchbay/patchbay/templates"
)

// LocalReport is the local load balancer as the last run left it.
type LocalReport struct {
	Config  string `json:"config"`
	Running bool   `json:"running"`
	// Routes are the frontends, by key.
	Routes []LocalRouteState `json:"routes"`
	// Problems are routes or servers refused, each naming what to fix.
	Problems []string `json:"problems,omitempty"`
	// Starts, Reloads and RuntimeChanges count how HAProxy was changed
	// since the listener started.
	Starts         uint64 `json:"starts"`
	Reloads        uint64 `json:"reloads"`
	RuntimeChanges uint64 `json:"runtime_changes"`
}

// LocalRouteState is one frontend: where it listens and its servers.
type LocalRouteState struct {
	Key       string   `json:"key"`
	Port      int      `json:"port"`
	Mode      string   `json:"mode"`
	Consumers []string `json:"consumers"` // service.VAR
	Servers   []string `json:"servers"`   // instance at address
}

// routeSet is what the hosted services' bindings ask the local load
// balancer to serve, checked against the node's configuration.
type routeSet struct {
	routes   map[string]*templates.LocalRoute // by key
	users    map[string][]string              // key → service.VAR
	problems []string
}

// localRoutes collects the via-local vars of plans. previous keeps a
// frontend whose var is unresolved for now (every provider gone): its
// port stays served, with no server, so that providers coming back cost
// no reload.
func localRoutes(cfg *Config, plans []*plan, previous map[string]templates.LocalRoute) routeSet {
	rs := routeSet{routes: map[string]*templates.LocalRoute{}, users: map[string][]string{}}
	hostedPorts := map[int]string{}
	for _, s := range cfg.Services {
		if s.Port > 0 {
			hostedPorts[s.Port] = s.Service
		}
	}
	for _, p := range plans {
		if p.binding == nil || p.m == nil {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(p.binding.Vars)) {
			req := p.m.Requires[name]
			if req.Via != manifest.ViaLocal {
				continue
			}
			v := p.binding.Vars[name]
			r, ok := routeOf(req.Key, v, previous)
			if !ok {
				continue
			}
			user := p.hosted.Service + "." + name
			rs.problems = append(rs.problems, skipped(user, v.Providers)...)
			rs.add(cfg, user, r, hostedPorts)
		}
	}
	return rs
}

// routeOf is the frontend a var asks for, or its previous one while the
// var has no provider.
func routeOf(key string, v binding.Var, previous map[string]templates.LocalRoute) (templates.LocalRoute, bool) {
	if v.Local == nil || !v.Resolved {
		r, ok := previous[key]
		r.Servers = nil
		return r, ok
	}
	return templates.LocalRoute{Name: "local_" + key, Key: key, Port: v.Local.Port, Mode: v.Local.Mode, Servers: servers(v.Providers)}, true
}

// add admits one consumer's route after the node's checks: a port in
// range, privileged only when allowed, not a port a hosted service
// listens on, not another key's.
func (rs *routeSet) add(cfg *Config, user string, r templates.LocalRoute, hostedPorts map[int]string) {
	refuse := func(format string, args ...any) {
		rs.problems = append(rs.problems, fmt.Sprintf("%s: %s is not served locally: ", user, r.Key)+fmt.Sprintf(format, args...))
	}
	switch {
	case r.Port < 1 || r.Port > 65535:
		refuse("local_port %d is not a port; the provider's manifest must give 1 to 65535", r.Port)
		return
	case r.Port < manifest.MinUnprivilegedPort && !cfg.LocalLB.PrivilegedPorts:
		refuse("local_port %d is privileged; use 1024 or above, or set local_lb.privileged_ports: true in %s", r.Port, cfg.File)
		return
	case hostedPorts[r.Port] != "":
		refuse("local_port %d is where %s listens on this node; give the provider another local_port", r.Port, hostedPorts[r.Port])
		return
	case r.Mode != binding.LocalHTTP && r.Mode != binding.LocalTCP:
		refuse("mode %q is neither http nor tcp", r.Mode)
		return
	}
	for key, other := range rs.routes {
		if key != r.Key && other.Port == r.Port {
			refuse("local_port %d already serves %s; give the providers of one of them another local_port", r.Port, key)
			return
		}
	}
	if old, ok := rs.routes[r.Key]; ok {
		if !slices.Equal(old.Servers, r.Servers) {
			// Consumers differ in public or region rules: the first wins.
			rs.problems = append(rs.problems, fmt.Sprintf("%s: %s is served with the providers of %s, which differ; give both requirements the same public and region", user, r.Key, rs.users[r.Key][0]))
		}
		rs.users[r.Key] = append(rs.users[r.Key], user)
		return
	}
	rs.routes[r.Key] = &r
	rs.users[r.Key] = []string{user}
}

// servers turns providers into backend servers. Only IP addresses are
// taken: HAProxy adds a dynamic server by IP, and a name would have it
// resolve what a manifest wrote.
func servers(ps []binding.Provider) []templates.LocalServer {
	out := make([]templates.LocalServer, 0, len(ps))
	for _, p := range ps {
		addr, err := resolver.BackendAddr(p.Value)
		if err != nil {
			continue
		}
		if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host) == nil {
			continue
		}
		out = append(out, templates.LocalServer{Name: serverName(p), Addr: addr})
	}
	slices.SortFunc(out, func(a, b templates.LocalServer) int { return cmp.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b templates.LocalServer) bool { return a.Name == b.Name })
}

// serverName is an HAProxy identifier for a provider: its instance ID
// with every character HAProxy does not take replaced.
func serverName(p binding.Provider) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, cmp.Or(p.Instance, p.Value))
}

// skipped lists the providers servers left out, for the report.
func skipped(user string, ps []binding.Provider) []string {
	var out []string
	for _, p := range ps {
		addr, err := resolver.BackendAddr(p.Value)
		if err == nil {
			host, _, _ := net.SplitHostPort(addr)
			if net.ParseIP(host) != nil {
				continue
			}
			err = fmt.Errorf("host %s is not an IP address", host)
		}
		out = append(out, fmt.Sprintf("%s: provider %s left out of the local load balancer: %v; provide an IP address", user, cmp.Or(p.Instance, p.Key), err))
	}
	return out
}

// LocalDetailKey is the status detail of the local load balancer.
const LocalDetailKey = "local load balancer"

// localDetails adds the local load balancer's routes and problems to a
// status: addresses and instance IDs only, never a provided value.
func localDetails(details map[string]string, r *LocalReport) {
	if r == nil {
		return
	}
	var parts []string
	for _, rt := range r.Routes {
		parts = append(parts, fmt.Sprintf("%s at 127.0.0.1:%d (%s) for %s: %d servers [%s]", rt.Key, rt.Port, rt.Mode, strings.Join(rt.Consumers, ", "), len(rt.Servers), strings.Join(rt.Servers, ", ")))
	}
	if len(r.Problems) > 0 {
		parts = append(parts, "problems: "+strings.Join(r.Problems, "; "))
	}
	parts = append(parts, fmt.Sprintf("%d reloads, %d runtime changes since start", r.Reloads, r.RuntimeChanges))
	details[LocalDetailKey] = strings.Join(parts, "; ")
}

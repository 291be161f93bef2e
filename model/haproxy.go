package model

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
)

// Hitless HAProxy: a builtin:haproxy template with options runtime_api:
// "true" and stats_socket has a change that only adds or removes servers
// applied through the runtime API, with no reload; the file is installed
// all the same, so a restart or a later reload gives the same servers. A
// change of anything else (a route, an option, a host name HAProxy would
// have to resolve) reloads, and so does any runtime API failure.

// HAProxyServer is one server line of a backend.
type HAProxyServer struct {
	Name, Addr string
	Args       []string // after the address, with the defaults' args first
}

// Checked reports whether HAProxy health-checks the server.
func (s HAProxyServer) Checked() bool { return slices.Contains(s.Args, "check") }

func (s HAProxyServer) same(o HAProxyServer) bool {
	return s.Addr == o.Addr && slices.Equal(s.Args, o.Args)
}

// HAProxyChanges are the runtime commands of one config change.
type HAProxyChanges struct {
	Before map[string][]HAProxyServer // backend → the old file's servers
	Add    map[string][]HAProxyServer // backend → servers to add
	Del    map[string][]string        // backend → server names to delete
}

// Added and Removed count the servers added and deleted.
func (c HAProxyChanges) Added() int   { return countAll(c.Add) }
func (c HAProxyChanges) Removed() int { return countAll(c.Del) }

func countAll[T any](m map[string][]T) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// haproxyLayout is a config split into structure and servers.
type haproxyLayout struct {
	skeleton []string // every line but comments and backend server lines
	backends map[string][]HAProxyServer
}

var haproxySections = []string{"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "program", "http-errors", "ring", "mailers", "cache"}

// parseHAProxy reads the lines of a config. A dynamic server inherits
// nothing from default-server, so the server lines of a backend get the
// last defaults section's default-server arguments prepended.
func parseHAProxy(cfg []byte) haproxyLayout {
	lay := haproxyLayout{backends: map[string][]HAProxyServer{}}
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
			s := HAProxyServer{Name: f[1], Addr: f[2], Args: append(slices.Clone(defaults), f[3:]...)}
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

// DiffHAProxy returns the server changes from the config old to new, or
// why they cannot be applied at runtime.
func DiffHAProxy(old, new []byte) (HAProxyChanges, string) {
	return diffHAProxy(parseHAProxy(old), parseHAProxy(new))
}

func diffHAProxy(old, new haproxyLayout) (HAProxyChanges, string) {
	c := HAProxyChanges{Before: old.backends, Add: map[string][]HAProxyServer{}, Del: map[string][]string{}}
	if !slices.Equal(old.skeleton, new.skeleton) {
		return c, "structure"
	}
	for _, be := range slices.Sorted(maps.Keys(new.backends)) {
		for _, s := range new.backends[be] {
			i := slices.IndexFunc(old.backends[be], func(o HAProxyServer) bool { return o.Name == s.Name })
			if i >= 0 && old.backends[be][i].same(s) {
				continue
			}
			if host, _, err := net.SplitHostPort(s.Addr); err != nil || net.ParseIP(host) == nil {
				return c, fmt.Sprintf("server %s/%s has address %s, which a dynamic server cannot resolve", be, s.Name, s.Addr)
			}
			if i >= 0 {
				c.Del[be] = append(c.Del[be], s.Name) // changed: replaced
			}
			c.Add[be] = append(c.Add[be], s)
		}
	}
	for _, be := range slices.Sorted(maps.Keys(old.backends)) {
		for _, o := range old.backends[be] {
			if !slices.ContainsFunc(new.backends[be], func(s HAProxyServer) bool { return s.Name == o.Name }) {
				c.Del[be] = append(c.Del[be], o.Name)
			}
		}
	}
	return c, ""
}

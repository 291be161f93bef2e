package templates

import "github.com/patchbay/patchbay/binding"

// UpstreamOf is provider p as the upstreams and routes functions give it
// to a load-balancer template; ok is false when they leave it out. The
// listener uses it to find a provider's address in an installed file and
// to screen host names before a render.
func UpstreamOf(p binding.Provider) (u Upstream, ok bool) { return upstream(p) }

// LocateUpstream is the host:port at which a load-balancer template
// writes provider p; ok is false when it leaves p out.
func LocateUpstream(p binding.Provider) (hostPort string, ok bool) {
	u, ok := upstream(p)
	return u.HostPort, ok
}

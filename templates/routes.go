package templates

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// mount is where a route's upstreams serve it: scheme and path prefix.
type mount struct{ scheme, path string }

// settle gives a route one scheme and path. Its upstreams come from
// different services that may mount the key differently (one provides
// http://a/api, another http://b/); a load balancer can rewrite a request
// one way per route, so flattening them would send some requests to the
// wrong path. The route keeps the mount most upstreams share (ties: the
// first in scheme and path order, never in instance order), the others
// are left out, and the conflict, naming the services on each side, is
// kept in the route and reported through Data.Warn.
func (f *funcs) settle(r *Route) {
	groups := map[mount][]Upstream{}
	for _, u := range r.Upstreams {
		m := mount{cmp.Or(u.Scheme, "http"), u.Path}
		groups[m] = append(groups[m], u)
	}
	mounts := slices.SortedFunc(maps.Keys(groups), func(a, b mount) int {
		return cmp.Or(cmp.Compare(len(groups[b]), len(groups[a])), cmp.Compare(a.scheme, b.scheme), cmp.Compare(a.path, b.path))
	})
	if len(mounts) == 0 {
		r.Scheme = "http"
		return
	}
	won := mounts[0]
	r.Scheme, r.Path, r.Upstreams = won.scheme, won.path, groups[won]
	r.Public = !slices.ContainsFunc(r.Upstreams, func(u Upstream) bool { return !u.Public })
	if len(mounts) == 1 {
		return
	}
	sides := make([]string, len(mounts))
	for i, m := range mounts {
		sides[i] = fmt.Sprintf("%s from %s", m.describe(), servicesOf(groups[m]))
	}
	r.Conflict = fmt.Sprintf("%s: providers mount it differently (%s); the route keeps %s, the others are left out until they agree",
		r.Key, strings.Join(sides, " vs "), won.describe())
	if f.data.Warn != nil {
		f.data.Warn(r.Conflict)
	}
}

func (m mount) describe() string {
	return fmt.Sprintf("%s://…%s", m.scheme, cmp.Or(m.path, "/"))
}

// servicesOf names the services of upstreams with their instance counts.
func servicesOf(ups []Upstream) string {
	n := map[string]int{}
	for _, u := range ups {
		n[cmp.Or(u.Service, u.Instance)]++
	}
	parts := make([]string, 0, len(n))
	for _, s := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s (%d)", s, n[s]))
	}
	return strings.Join(parts, ", ")
}

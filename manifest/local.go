package manifest

import (
	"cmp"
	"fmt"
	"strings"
)

// MinUnprivilegedPort is the lowest local_port a locally served key may
// use unless the node's listener.yaml allows privileged ports: below it a
// port belongs to system services.
const MinUnprivilegedPort = 1024

// via checks a requirement's via: local serving needs one provided key
// bound through one local port, so neither a template of several keys
// (several ports) nor a glob (select all) can use it.
func (v *validator) via(r *Requirement, at []string) {
	name := strings.Join(at, ".")
	switch {
	case r.Via == "":
		return
	case r.Via != ViaLocal:
		v.report(append(at, "via"), "%s.via: %q is not a way of serving; the only one is \"local\" (or leave via out)%s", name, r.Via, suggest(r.Via, []string{ViaLocal}))
	case r.Template != "":
		v.report(append(at, "via"), "%s: via: local serves one provided key through one local port; give key: instead of a template of several keys", name)
	case r.Select != SelectOne:
		v.report(append(at, "via"), "%s: via: local balances over every live provider itself; use select: one", name)
	}
}

// LocalPortConflicts reports, across the services of set and the
// published manifests of elsewhere (the caller reads them), two services
// of one federation that claim the same local_port: a node consuming
// both through its local load balancer could bind only one. A problem is
// reported at each service of set involved.
func LocalPortConflicts(set *Set, elsewhere []Manifest) Problems {
	type claim struct{ service, where string }
	claims := map[string]map[int][]claim{} // federation → port → claims
	add := func(m *Manifest, where string) {
		if m.LocalPort == 0 {
			return
		}
		fed := cmp.Or(m.Federation, DefaultFederation)
		if claims[fed] == nil {
			claims[fed] = map[int][]claim{}
		}
		for _, c := range claims[fed][m.LocalPort] {
			if c.service == m.ID {
				return // the set's copy replaces the published one
			}
		}
		claims[fed][m.LocalPort] = append(claims[fed][m.LocalPort], claim{m.ID, where})
	}
	for i := range set.Services {
		add(&set.Services[i].Manifest, "set")
	}
	for i := range elsewhere {
		add(&elsewhere[i], "published")
	}
	var probs Problems
	for i := range set.Services {
		s := set.Services[i]
		m := s.Manifest
		cs := claims[cmp.Or(m.Federation, DefaultFederation)][m.LocalPort]
		if m.LocalPort == 0 || len(cs) < 2 {
			continue
		}
		var others []string
		for _, c := range cs {
			if c.service != m.ID {
				others = append(others, c.service)
			}
		}
		p := s.fieldAt("local_port")
		p.Message = fmt.Sprintf("local_port: %d is also claimed by %s; a node serving both locally could bind only one: give each service its own local_port", m.LocalPort, strings.Join(others, ", "))
		probs = append(probs, p)
	}
	return probs.sorted()
}

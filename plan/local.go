package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/resolver"
)

// KindLocal is a VarChange of a requirement served via: local whose value
// stays: only the servers of the consumers' local load balancers change.
const KindLocal = "local"

// LocalChange is a locally served requirement whose servers change. The
// consumer's files and commands stay as they are: its nodes' local
// HAProxy changes servers over the runtime API, with no reload.
type LocalChange struct {
	Federation string   `json:"federation"`
	Service    string   `json:"service"` // the consumer
	Region     string   `json:"region"`
	Var        string   `json:"var"`
	Address    string   `json:"address"` // 127.0.0.1:PORT, the value's
	Mode       string   `json:"mode"`
	Before     []string `json:"before"` // servers: instance IDs
	After      []string `json:"after"`
	Lost       []string `json:"lost,omitempty"`
	Gained     []string `json:"gained,omitempty"`
	// Nodes host the consumer: only their local load balancers change.
	Nodes []string `json:"nodes"`
}

// localKind says whether a var that changes is a local route whose value
// stays; diffVar asks it before calling the change a provider move.
func localKind(b, a binding.Var) bool {
	return a.Local != nil && b.Local != nil && *a.Local == *b.Local && a.Value == b.Value && a.Resolved && b.Resolved
}

// localOnly reports whether every change of bc is a local route's
// servers: the consumer then keeps its files and is not provisioned.
func localOnly(bc BindingChange) bool {
	if bc.Change != ChangeChanged || bc.ManifestChanged || len(bc.Vars) == 0 {
		return false
	}
	return !slices.ContainsFunc(bc.Vars, func(v VarChange) bool { return v.Kind != KindLocal })
}

// localChanges lists the local routes among the binding changes, with
// the nodes hosting each consumer, and drops from nodes the runs of
// consumers whose changes are all local: those runs do nothing.
func (s *sides) localChanges(changes []BindingChange, hosts []Host, nodes []NodeChange) ([]LocalChange, []NodeChange) {
	var out []LocalChange
	skip := map[svcKey]map[string]bool{} // consumer → regions whose runs do nothing
	for _, bc := range changes {
		for _, v := range bc.Vars {
			if v.Kind == KindLocal {
				out = append(out, s.localChange(bc, v, hosts))
			}
		}
		if localOnly(bc) {
			k := svcKey{bc.Federation, bc.Service}
			if skip[k] == nil {
				skip[k] = map[string]bool{}
			}
			skip[k][bc.Region] = true
		}
	}
	var kept []NodeChange
	for _, n := range nodes {
		n.Services = slices.DeleteFunc(slices.Clone(n.Services), func(r model.ServiceRun) bool {
			b := s.after.binding(r.Federation, r.Service, r.Region) // the node's region reads this binding
			return b != nil && skip[svcKey{r.Federation, r.Service}][b.Region]
		})
		if len(n.Services) > 0 {
			n.Reloads = distinctReloads(n.Services, func(fed, service, template string) []string {
				return s.after.manifests[svcKey{fed, service}].Templates[template].Reload
			})
			kept = append(kept, n)
		}
	}
	return out, kept
}

func (s *sides) localChange(bc BindingChange, v VarChange, hosts []Host) LocalChange {
	lc := LocalChange{Federation: bc.Federation, Service: bc.Service, Region: bc.Region, Var: v.Var,
		Before: v.From, After: v.To, Lost: v.Lost, Gained: v.Gained, Nodes: []string{}}
	if b := s.after.binding(bc.Federation, bc.Service, bc.Region); b != nil {
		if av := b.Vars[v.Var]; av.Local != nil {
			lc.Address, lc.Mode = fmt.Sprintf("%s:%d", resolver.LocalAddress, av.Local.Port), av.Local.Mode
		}
	}
	for _, h := range s.hostsOf(hosts, bc) {
		if !slices.Contains(lc.Nodes, h) {
			lc.Nodes = append(lc.Nodes, h)
		}
	}
	slices.Sort(lc.Nodes)
	return lc
}

// hostsOf are the nodes hosting bc's service in its region, from the
// instances of the after snapshot and from hosts.
func (s *sides) hostsOf(hosts []Host, bc BindingChange) []string {
	var out []string
	match := func(fed, service, region string) bool {
		return manifest.FederationOf(fed) == bc.Federation && service == bc.Service && (bc.Region == "" || region == bc.Region)
	}
	for _, in := range s.after.snap.Instances {
		if match(in.Federation, in.Service, in.Region) {
			out = append(out, in.Node)
		}
	}
	for _, h := range hosts {
		if match(h.Federation, h.Service, h.Region) {
			out = append(out, h.Node)
		}
	}
	return out
}

// writeLocal writes the local routes for a person.
func writeLocal(b *strings.Builder, lcs []LocalChange) {
	for _, lc := range lcs {
		fmt.Fprintf(b, "local route %s of %s%s at %s (%s): servers %s → %s; %s keeps its files and is not reloaded; only the local load balancers of %s change (runtime API, no reload)\n",
			lc.Var, lc.Service, regionText(lc.Region), lc.Address, lc.Mode, orNone(strings.Join(lc.Before, ", ")), orNone(strings.Join(lc.After, ", ")), lc.Service, orNone(strings.Join(lc.Nodes, ", ")))
	}
}

// localNotes warns, for the after snapshot, of two services of one
// federation claiming one local_port, and of a locally served var whose
// port is where another instance on a consumer's node listens: that
// node's load balancer could not bind it.
func localNotes(snap *binding.Snapshot, res *resolver.Result) []string {
	var notes []string
	claims := map[string]string{} // "fed/port" → service
	for _, m := range snap.Manifests {
		if m.LocalPort == 0 {
			continue
		}
		k := fmt.Sprintf("%s/%d", manifest.FederationOf(m.Federation), m.LocalPort)
		if other, ok := claims[k]; ok {
			notes = append(notes, fmt.Sprintf("services %s and %s (federation %s) both claim local_port %d; a node serving both locally could bind only one", other, m.ID, manifest.FederationOf(m.Federation), m.LocalPort))
			continue
		}
		claims[k] = m.ID
	}
	for _, b := range res.Bindings {
		for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
			v := b.Vars[name]
			if v.Local == nil {
				continue
			}
			notes = append(notes, portCollisions(snap, b, name, v.Local.Port)...)
		}
	}
	slices.Sort(notes) // a binding per region says the same
	return slices.Compact(notes)
}

func portCollisions(snap *binding.Snapshot, b binding.Binding, name string, port int) []string {
	var notes []string
	for _, c := range snap.Instances {
		if manifest.FederationOf(c.Federation) != b.Federation || c.Service != b.Service || (b.Region != "" && c.Region != b.Region) {
			continue
		}
		for _, o := range snap.Instances {
			if o.Node == c.Node && o.Port == port {
				notes = append(notes, fmt.Sprintf("node %s: %s of %s is served locally at %s:%d, where %s listens on that node; its listener refuses the route until %s's providers get another local_port", c.Node, name, b.Service, resolver.LocalAddress, port, o.ID, name))
			}
		}
	}
	return notes
}

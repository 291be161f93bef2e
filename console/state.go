package console

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// State is everything the page shows, sent whole on every change: small
// enough for the clusters a person looks at, and simple for the page.
type State struct {
	Error       string       `json:"error,omitempty"` // the last read failed: the rest is from before it
	Federations []Federation `json:"federations"`
	Nodes       []Node       `json:"nodes"`
	Halts       []Halt       `json:"halts"`
	Actions     bool         `json:"actions"` // state-changing buttons are enabled
	// Changes are the recent changes spreading (changes.go); nil unless
	// the listeners were asked (WithLiveChanges).
	Changes []Change `json:"changes,omitempty"`
}

// Federation is one isolation domain: its graph and its services.
type Federation struct {
	Name       string     `json:"name"`
	Graph      string     `json:"graph"` // DOT, laid out by the page
	Cycles     [][]string `json:"cycles"`
	Services   []Service  `json:"services"`
	Datastores []string   `json:"datastores"` // keys only: values may be credentials
}

// Service is one published service.
type Service struct {
	Name      string     `json:"name"`
	Public    bool       `json:"public"`
	Unique    bool       `json:"unique"`
	Provides  []string   `json:"provides"`
	Instances []Instance `json:"instances"`
	Bindings  []Binding  `json:"bindings"`
}

// Instance is one live instance. Instances in the registry are live and
// healthy by construction (their key goes with their session, which a
// critical check invalidates), so Health is "passing".
type Instance struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Region  string `json:"region,omitempty"`
	Health  string `json:"health"`
}

// Binding is a service's binding in one region, as stored by the resolver
// (with its revision), else as resolved now.
type Binding struct {
	Region   string `json:"region"`
	Revision uint64 `json:"revision"`
	Stored   bool   `json:"stored"`
	Vars     []Var  `json:"vars"`
}

// Var is one requirement's binding and why.
type Var struct {
	Name     string `json:"name"`
	Key      string `json:"key"` // key, glob or template it draws on
	Select   string `json:"select"`
	Resolved bool   `json:"resolved"`
	Optional bool   `json:"optional,omitempty"`
	Value    string `json:"value,omitempty"`
	Why      string `json:"why"`
}

// Node is one node's last provision run.
type Node struct {
	Name       string               `json:"name"`
	Federation string               `json:"federation,omitempty"`
	Result     string               `json:"result,omitempty"` // "" when the node has recorded no run
	Message    string               `json:"message,omitempty"`
	At         time.Time            `json:"at,omitzero"`
	Revision   uint64               `json:"revision,omitempty"`
	Live       bool                 `json:"live"`            // answered now, rather than read from its record
	Queue      *registry.QueueState `json:"queue,omitempty"` // on a live answer only
	Services   []string             `json:"services"`
	Details    []string             `json:"details"`
	Instances  []string             `json:"instances"`
}

// Halt is a halted rollout group.
type Halt struct {
	Federation string    `json:"federation"`
	Group      string    `json:"group"`
	Node       string    `json:"node"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at,omitzero"`
}

// inputs is one read of the registry.
type inputs struct {
	snap     *binding.Snapshot
	stored   []registry.StoredBinding
	statuses []registry.Status
	halts    map[string]registry.Halt
}

// build turns one read into the page's state.
func build(in inputs) State {
	res := resolver.Resolve(in.snap)
	st := State{Nodes: nodes(in), Halts: halts(in.halts)}
	stored := storedBindings(in.stored)
	for _, fed := range federationNames(in.snap) {
		f := Federation{Name: fed}
		ms := manifestsOf(in.snap, fed)
		g := resolver.BuildGraph(ms, resolver.WithDatastores(datastoresOf(in.snap, fed)))
		f.Cycles = orEmpty(g.Cycles())
		f.Graph = graphDOT(g, unresolvedOf(res, fed))
		for _, d := range datastoresOf(in.snap, fed) {
			f.Datastores = append(f.Datastores, d.Key)
		}
		f.Datastores = orEmpty(f.Datastores)
		for i := range ms {
			f.Services = append(f.Services, service(&ms[i], in.snap, res, stored))
		}
		f.Services = orEmpty(f.Services)
		st.Federations = append(st.Federations, f)
	}
	st.Federations = orEmpty(st.Federations)
	return st
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func federationNames(snap *binding.Snapshot) []string {
	var out []string
	for _, m := range snap.Manifests {
		out = append(out, manifest.FederationOf(m.Federation))
	}
	for _, d := range snap.Datastores {
		out = append(out, manifest.FederationOf(d.Federation))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func manifestsOf(snap *binding.Snapshot, fed string) []manifest.Manifest {
	var out []manifest.Manifest
	for _, m := range snap.Manifests {
		if manifest.FederationOf(m.Federation) == fed {
			out = append(out, m)
		}
	}
	return out
}

func datastoresOf(snap *binding.Snapshot, fed string) []binding.Datastore {
	var out []binding.Datastore
	for _, d := range snap.Datastores {
		if manifest.FederationOf(d.Federation) == fed {
			out = append(out, d)
		}
	}
	return out
}

type bindingKey struct{ fed, service, region string }

// storedBindings decodes what the resolver stored; one that does not
// decode is left out (the page then shows the binding resolved now).
func storedBindings(list []registry.StoredBinding) map[bindingKey]binding.Binding {
	out := map[bindingKey]binding.Binding{}
	for _, sb := range list {
		var b binding.Binding
		if err := decodeBinding(sb.Value, &b); err == nil {
			out[bindingKey{sb.Federation, sb.Service, sb.Region}] = b
		}
	}
	return out
}

func service(m *manifest.Manifest, snap *binding.Snapshot, res *resolver.Result, stored map[bindingKey]binding.Binding) Service {
	fed := manifest.FederationOf(m.Federation)
	s := Service{Name: m.ID, Public: m.Public, Unique: m.Unique, Provides: slices.Sorted(maps.Keys(m.Provides))}
	s.Provides = orEmpty(s.Provides)
	for _, in := range snap.Instances {
		if manifest.FederationOf(in.Federation) == fed && in.Service == m.ID {
			s.Instances = append(s.Instances, Instance{ID: in.ID, Node: in.Node, Address: in.Address, Port: in.Port, Region: in.Region, Health: "passing"})
		}
	}
	s.Instances = orEmpty(s.Instances)
	for _, b := range res.Bindings {
		if b.Federation != fed || b.Service != m.ID {
			continue
		}
		view := Binding{Region: b.Region}
		if sb, ok := stored[bindingKey{fed, m.ID, b.Region}]; ok {
			b, view.Revision, view.Stored = sb, sb.Revision, true
		}
		view.Vars = vars(m, b)
		s.Bindings = append(s.Bindings, view)
	}
	s.Bindings = orEmpty(s.Bindings)
	return s
}

func vars(m *manifest.Manifest, b binding.Binding) []Var {
	out := []Var{}
	for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
		v := b.Vars[name]
		req := m.Requires[name]
		view := Var{Name: name, Key: cmp.Or(req.Key, req.Template), Select: v.Select, Resolved: v.Resolved, Optional: v.Optional}
		switch {
		case !v.Resolved:
			view.Why = reasonOf(b.Unresolved, name, v.Optional)
		default:
			view.Value, view.Why = v.Redacted(name).Value, whyResolved(v)
		}
		out = append(out, view)
	}
	return out
}

func reasonOf(us []binding.Unresolved, name string, optional bool) string {
	for _, u := range us {
		if u.Var == name {
			return u.Reason
		}
	}
	if optional {
		return "optional and unresolved: bound to empty"
	}
	return "unresolved"
}

func whyResolved(v binding.Var) string {
	if len(v.Providers) == 0 {
		return "resolved"
	}
	if v.Select == manifest.SelectAll {
		return fmt.Sprintf("every live provider: %d", len(v.Providers))
	}
	var parts []string
	for _, p := range v.Providers {
		if p.Datastore {
			parts = append(parts, "datastore "+p.Key+" (no live provider)")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s on %s%s, by rendezvous hash", p.Instance, p.Node, regionNote(p.Region)))
	}
	return strings.Join(parts, "; ")
}

func regionNote(r string) string {
	if r == "" {
		return ""
	}
	return " (region " + r + ")"
}

func nodes(in inputs) []Node {
	byName := map[string]*Node{}
	get := func(name string) *Node {
		if byName[name] == nil {
			byName[name] = &Node{Name: name, Services: []string{}, Details: []string{}, Instances: []string{}}
		}
		return byName[name]
	}
	for _, s := range in.statuses {
		n := get(s.Node)
		n.Federation, n.Result, n.Message, n.At, n.Revision, n.Live = s.Federation, s.Result, s.Message, s.At, s.Revision, s.Live
		n.Queue = s.Queue
		if len(s.Details) > 0 {
			// A run's message is its services' reasons joined, which
			// Details lists one per service: shown once, there.
			n.Message = ""
		}
		for _, svc := range slices.Sorted(maps.Keys(s.Details)) {
			n.Services = append(n.Services, svc)
			n.Details = append(n.Details, svc+": "+s.Details[svc])
		}
	}
	for _, i := range in.snap.Instances {
		n := get(i.Node)
		n.Instances = append(n.Instances, i.ID)
	}
	out := []Node{}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[name])
	}
	return out
}

func halts(hs map[string]registry.Halt) []Halt {
	out := []Halt{}
	for _, k := range slices.Sorted(maps.Keys(hs)) {
		fed, group, _ := strings.Cut(k, "/")
		h := hs[k]
		out = append(out, Halt{Federation: fed, Group: group, Node: h.Node, Reason: h.Reason, At: h.At})
	}
	return out
}

package plan

import (
	"cmp"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
)

// Kinds of VarChange: how a requirement's binding moves.
const (
	KindAdded      = "added"      // a new requirement (or a new binding)
	KindRemoved    = "removed"    // the requirement (or binding) goes away
	KindProvider   = "provider"   // bound to another live provider
	KindDatastore  = "datastore"  // falls back to a datastore
	KindUnresolved = "unresolved" // was bound, becomes unresolved
	KindResolved   = "resolved"   // was unresolved, becomes bound
	KindUpstreams  = "upstreams"  // select all: the set of providers changes
	KindValue      = "value"      // same provider, another value
)

// Changes of a BindingChange.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// BindingChange is one service's binding in one region, before → after.
type BindingChange struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Region     string `json:"region"`
	Change     string `json:"change"` // added | removed | changed
	// ManifestChanged: the service's own manifest changes, which re-renders
	// its files even when no requirement moves.
	ManifestChanged bool        `json:"manifest_changed,omitempty"`
	Vars            []VarChange `json:"vars,omitempty"`
	// Unresolved is what the binding leaves unresolved after the change.
	Unresolved []binding.Unresolved `json:"unresolved,omitempty"`
}

// VarChange is one requirement whose binding moves.
type VarChange struct {
	Var    string   `json:"var"`
	Select string   `json:"select"`
	Kind   string   `json:"kind"`
	Before string   `json:"before"` // value, or "(unresolved)"
	After  string   `json:"after"`
	From   []string `json:"from,omitempty"` // providers before: "INSTANCE KEY" or "datastore KEY"
	To     []string `json:"to,omitempty"`
	Lost   []string `json:"lost,omitempty"` // in From, not in To
	Gained []string `json:"gained,omitempty"`
	Reason string   `json:"reason,omitempty"` // why After is unresolved
}

// RouteChange is one provided key a select-all requirement (a load
// balancer's route) draws on, when it loses upstreams.
type RouteChange struct {
	Federation string   `json:"federation"`
	Service    string   `json:"service"`
	Region     string   `json:"region"`
	Var        string   `json:"var"`
	Key        string   `json:"key"`
	Before     int      `json:"before"` // upstreams before
	After      int      `json:"after"`
	Lost       []string `json:"lost"` // instances no longer upstreams
	// Empty: no upstream is left; the route's file keeps its last good
	// version (min) or the route disappears from it.
	Empty bool `json:"empty,omitempty"`
}

// Unresolved marks a value that did not resolve.
const Unresolved = "(unresolved)"

// diffBindings walks two sorted results side by side.
func diffBindings(before, after *resolver.Result) ([]BindingChange, []RouteChange) {
	var changes []BindingChange
	var routes []RouteChange
	bs, as := before.Bindings, after.Bindings
	for len(bs) > 0 || len(as) > 0 {
		var c int
		switch {
		case len(bs) == 0:
			c = 1
		case len(as) == 0:
			c = -1
		default:
			c = compareKeys(bs[0], as[0])
		}
		var bc BindingChange
		var rs []RouteChange
		switch {
		case c < 0:
			bc, rs = diffBinding(&bs[0], nil)
			bs = bs[1:]
		case c > 0:
			bc, rs = diffBinding(nil, &as[0])
			as = as[1:]
		default:
			bc, rs = diffBinding(&bs[0], &as[0])
			bs, as = bs[1:], as[1:]
		}
		routes = append(routes, rs...)
		if bc.Change != "" {
			changes = append(changes, bc)
		}
	}
	return changes, routes
}

func compareKeys(a, b binding.Binding) int {
	return cmp.Or(cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region))
}

// diffBinding compares one binding; a nil side is absent. The returned
// change has Change "" when nothing differs.
func diffBinding(b, a *binding.Binding) (BindingChange, []RouteChange) {
	id := cmp.Or(a, b)
	bc := BindingChange{Federation: id.Federation, Service: id.Service, Region: id.Region}
	var bv, av map[string]binding.Var
	switch {
	case b == nil:
		bc.Change, av = ChangeAdded, a.Vars
	case a == nil:
		bc.Change, bv = ChangeRemoved, b.Vars
	default:
		bv, av = b.Vars, a.Vars
		bc.ManifestChanged = b.Manifest != a.Manifest
	}
	if a != nil {
		bc.Unresolved = a.Unresolved
	}
	var routes []RouteChange
	names := slices.Sorted(maps.Keys(bv))
	names = slices.Compact(slices.Sorted(slices.Values(append(names, slices.Collect(maps.Keys(av))...))))
	for _, name := range names {
		before, hadBefore := bv[name]
		after, hasAfter := av[name]
		vc, changed := diffVar(name, before, hadBefore, after, hasAfter)
		if !changed {
			continue
		}
		vc.Reason = reasonOf(bc.Unresolved, name)
		bc.Vars = append(bc.Vars, vc)
		if hadBefore && hasAfter && after.Select == manifest.SelectAll {
			routes = append(routes, lostRoutes(bc, name, before, after)...)
		}
	}
	if bc.Change == "" && (len(bc.Vars) > 0 || bc.ManifestChanged) {
		bc.Change = ChangeChanged
	}
	return bc, routes
}

func reasonOf(us []binding.Unresolved, name string) string {
	for _, u := range us {
		if u.Var == name {
			return u.Reason
		}
	}
	return ""
}

// diffVar says how one var moves, and whether it moves at all.
func diffVar(name string, b binding.Var, hadB bool, a binding.Var, hasA bool) (VarChange, bool) {
	// Values as the one redaction policy shows them: a plan is read by
	// people who could not read the datastore (a pull-request comment).
	vc := VarChange{Var: name, Select: cmp.Or(a.Select, b.Select), Before: shown(b.Redacted(name), hadB), After: shown(a.Redacted(name), hasA)}
	vc.From, vc.To = providerIDs(b.Providers), providerIDs(a.Providers)
	vc.Lost, vc.Gained = minus(vc.From, vc.To), minus(vc.To, vc.From)
	switch {
	case !hadB:
		vc.Kind = KindAdded
	case !hasA:
		vc.Kind = KindRemoved
	case b.Resolved == a.Resolved && b.Value == a.Value && slices.Equal(vc.From, vc.To):
		return vc, false
	case b.Resolved && !a.Resolved:
		vc.Kind = KindUnresolved
	case !b.Resolved && a.Resolved:
		vc.Kind = KindResolved
	case localKind(b, a): // local.go
		vc.Kind = KindLocal
	case a.Select == manifest.SelectAll:
		vc.Kind = KindUpstreams
	case fromDatastore(a) && !fromDatastore(b):
		vc.Kind = KindDatastore
	case !slices.Equal(vc.From, vc.To):
		vc.Kind = KindProvider
	default:
		vc.Kind = KindValue
	}
	return vc, true
}

func shown(v binding.Var, present bool) string {
	switch {
	case !present:
		return ""
	case !v.Resolved:
		return Unresolved
	}
	return v.Value
}

func fromDatastore(v binding.Var) bool {
	return len(v.Providers) > 0 && slices.ContainsFunc(v.Providers, func(p binding.Provider) bool { return p.Datastore })
}

func providerID(p binding.Provider) string {
	if p.Datastore {
		return "datastore " + p.Key
	}
	return p.Instance + " " + p.Key
}

func providerIDs(ps []binding.Provider) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, providerID(p))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// minus returns the elements of a (sorted) not in b (sorted).
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); !ok {
			out = append(out, s)
		}
	}
	return out
}

// lostRoutes groups a select-all var's providers by key and reports the
// keys that lose an upstream.
func lostRoutes(bc BindingChange, name string, b, a binding.Var) []RouteChange {
	before, after := byKey(b.Providers), byKey(a.Providers)
	var out []RouteChange
	for _, key := range slices.Sorted(maps.Keys(before)) {
		lost := minus(before[key], after[key])
		if len(lost) == 0 {
			continue
		}
		out = append(out, RouteChange{
			Federation: bc.Federation, Service: bc.Service, Region: bc.Region, Var: name, Key: key,
			Before: len(before[key]), After: len(after[key]), Lost: lost, Empty: len(after[key]) == 0,
		})
	}
	return out
}

func byKey(ps []binding.Provider) map[string][]string {
	out := map[string][]string{}
	for _, p := range ps {
		out[p.Key] = append(out[p.Key], cmp.Or(p.Instance, "datastore"))
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

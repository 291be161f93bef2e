// Package resolver binds the requirements of services to live providers.
//
// Everything here is pure: Resolve, Explain and BuildGraph read a snapshot
// or manifests and return values, with no I/O, clock or goroutines, so the
// same input always gives byte-identical output. Its input types (Snapshot,
// Instance, Datastore) are its own, so it links neither the registry nor
// any network client. The leader-elected loop that reads snapshots from
// Consul, writes bindings back and announces them on NATS is package
// resolver/daemon.
package resolver

import (
	"cmp"
	"slices"
)

// Binding is the resolver's answer for one service in one region.
type Binding struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	// Region is "" for the binding of consumers in no or an unknown region.
	Region string `json:"region"`
	// Revision is set by the resolver loop, not by Resolve, which leaves 0.
	Revision uint64 `json:"revision"`
	// Vars holds every requirement, resolved or not.
	Vars map[string]Var `json:"vars"`
	// Unresolved lists the non-optional vars that did not resolve, by Var.
	Unresolved []Unresolved `json:"unresolved,omitempty"`
	// Manifest is a digest of the service's own manifest. Listeners render
	// its templates, so a manifest change must reach them like a binding
	// change: it gives the binding a new revision and an event.
	Manifest string `json:"manifest,omitempty"`
}

// Var is the value of one requirement.
type Var struct {
	Select string `json:"select"` // "one" | "all"
	// Value is, for select one, the bound value (template expanded); for
	// select all, the values joined with ","; "" when unresolved.
	Value string `json:"value"`
	// Providers is, for select one, the one chosen (one entry per key of a
	// template); for select all, every provider sorted by (Instance, Key).
	Providers []Provider `json:"providers,omitempty"`
	Optional  bool       `json:"optional,omitempty"`
	Resolved  bool       `json:"resolved"`
	// Withheld lists, for a select-all var with fewer providers than its
	// min or its service's largest template min, the live providers that
	// policy keeps out: a listener keeping a last good file must still
	// render it when that file routes to one of them. Elsewhere it is
	// nil, so that a change of policy-withheld providers costs no binding
	// write unless it can matter, and a pointer, so that the many vars
	// without it stay small.
	Withheld *Withholding `json:"withheld,omitempty"`
	// Local is set for a requirement served via: local: Value then names
	// the node's own load balancer, and Providers are its backends, every
	// live provider the region and public rules admit.
	Local *LocalRoute `json:"local,omitempty"`
}

// LocalRoute is where a node's load balancer serves a var: 127.0.0.1 at
// Port, balancing in Mode over the var's providers.
type LocalRoute struct {
	Port int    `json:"port"`
	Mode string `json:"mode"` // LocalHTTP or LocalTCP
}

// Modes of a LocalRoute.
const (
	LocalHTTP = "http" // the value is an http:// URL: HAProxy balances requests
	LocalTCP  = "tcp"  // anything else: HAProxy balances connections
)

// Provider is where one value of a Var came from.
type Provider struct {
	Key       string `json:"key"` // the provided key this value came from
	Value     string `json:"value"`
	Service   string `json:"service,omitempty"`  // "" for a datastore
	Instance  string `json:"instance,omitempty"` // instance ID; "" for a datastore
	Node      string `json:"node,omitempty"`
	Address   string `json:"address,omitempty"`
	Port      int    `json:"port,omitempty"`
	Region    string `json:"region,omitempty"`
	Public    bool   `json:"public,omitempty"`
	Datastore bool   `json:"datastore,omitempty"`
}

// Unresolved is a requirement that could not be bound, and why.
type Unresolved struct {
	Var    string `json:"var"`
	Key    string `json:"key"`    // key, glob or template it needed
	Reason string `json:"reason"` // a sentence a person can act on
}

// Result is the bindings of a whole snapshot.
//
// A Result is read-only: bindings whose select-all requirements resolve
// alike share one Providers slice rather than copying thousands of
// load-balancer upstreams per region.
type Result struct {
	Bindings []Binding // sorted by (Federation, Service, Region)
}

// Lookup returns the binding of service in fed for region exactly; a
// consumer without a binding for its region reads the one for region "".
func (r *Result) Lookup(fed, service, region string) (*Binding, bool) {
	i, ok := slices.BinarySearchFunc(r.Bindings, Binding{Federation: fed, Service: service, Region: region}, compareBindings)
	if !ok {
		return nil, false
	}
	return &r.Bindings[i], true
}

// Ready reports whether every non-optional var resolved, that is whether
// templates needing this binding may be rendered.
func (b *Binding) Ready() bool {
	for _, v := range b.Vars {
		if !v.Resolved && !v.Optional {
			return false
		}
	}
	return true
}

func compareBindings(a, b Binding) int {
	return cmp.Or(
		cmp.Compare(a.Federation, b.Federation),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Region, b.Region),
	)
}

// compareProviders orders select-all providers; datastores (no instance)
// sort first, which only matters when a datastore is the sole provider.
func compareProviders(a, b Provider) int {
	return cmp.Or(cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Key, b.Key))
}

// Package binding is the contract between the resolver and everything that
// reads its answers: the Snapshot the engine resolves (manifests, live
// instances, datastores), the Binding it writes per service and region,
// with its Vars and their Providers, and the rules a stored binding must
// hold to (DecodeBinding) and how its secrets are shown (Redacted).
//
// The engine (resolver), the registry, the listener, plan and the console
// share these types, so it imports nothing networked and nothing of theirs:
// only manifest and the leaf libraries under internal/.
package binding

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

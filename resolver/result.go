package resolver

import (
	"cmp"
	"slices"

	"github.com/patchbay/patchbay/binding"
)

// Result is the bindings of a whole snapshot.
//
// A Result is read-only: bindings whose select-all requirements resolve
// alike share one Providers slice rather than copying thousands of
// load-balancer upstreams per region.
type Result struct {
	Bindings []binding.Binding // sorted by (Federation, Service, Region)
}

// Lookup returns the binding of service in fed for region exactly; a
// consumer without a binding for its region reads the one for region "".
func (r *Result) Lookup(fed, service, region string) (*binding.Binding, bool) {
	i, ok := slices.BinarySearchFunc(r.Bindings, binding.Binding{Federation: fed, Service: service, Region: region}, compareBindings)
	if !ok {
		return nil, false
	}
	return &r.Bindings[i], true
}

func compareBindings(a, b binding.Binding) int {
	return cmp.Or(
		cmp.Compare(a.Federation, b.Federation),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Region, b.Region),
	)
}

// compareProviders orders select-all providers; datastores (no instance)
// sort first, which only matters when a datastore is the sole provider.
func compareProviders(a, b binding.Provider) int {
	return cmp.Or(cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Key, b.Key))
}

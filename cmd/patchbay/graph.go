package main

import (
	"context"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
)

// graphFrom builds the dependency graph, datastores included, from PATHs
// when given, else from the registry.
func (a *app) graphFrom(ctx context.Context, paths []string) (*resolver.Graph, error) {
	if len(paths) == 0 {
		snap, err := a.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		return resolver.BuildGraph(snap.Manifests, resolver.WithDatastores(snap.Datastores)), nil
	}
	set, err := manifest.Load(paths...)
	if err != nil {
		return nil, err
	}
	var ms []manifest.Manifest
	for _, s := range set.Services {
		ms = append(ms, s.Manifest)
	}
	var ds []binding.Datastore
	for _, f := range set.Datastores {
		for _, k := range slices.Sorted(maps.Keys(f.Datastores.Values)) {
			ds = append(ds, binding.Datastore{Federation: f.Datastores.Federation, Key: k, Value: f.Datastores.Values[k]})
		}
	}
	return resolver.BuildGraph(ms, resolver.WithDatastores(ds)), nil
}

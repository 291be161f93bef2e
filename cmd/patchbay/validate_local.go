package main

import (
	"context"

	"github.com/patchbay/patchbay/manifest"
)

// localPortConflicts reports local_port claims that collide within the
// files given and with the published manifests, when Consul answers
// within validate's wait; without it, within the files only.
func (a *app) localPortConflicts(ctx context.Context, set *manifest.Set) manifest.Problems {
	ctx, cancel := context.WithTimeout(ctx, validateConsulWait)
	defer cancel()
	var published []manifest.Manifest
	if reg, err := a.registry(); err == nil {
		if snap, err := reg.Snapshot(ctx); err == nil {
			published = snap.Manifests
		}
	}
	return manifest.LocalPortConflicts(set, published)
}

// Package plan tells what a change to the registry would do before it is
// made: it resolves two snapshots with the pure resolver engine and says,
// per service and region, which bindings move, which nodes would re-render
// which files (with a diff), which reload and provision commands would run
// and which rollout groups would roll.
//
// The snapshots come from the caller (the registry, then edited with
// Publish or WithoutInstances); this package does no I/O of its own. Only
// the Renderer it is given may fetch, for templates that use
// consul-template's lookups.
package plan

import (
	"cmp"
	"context"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
	"github.com/patchbay/patchbay/templates"
)

// Renderer renders one template; *templates.Renderer is one.
type Renderer interface {
	Render(ctx context.Context, name, contents string, data templates.Data) ([]byte, error)
}

// Plan is everything that would change between two snapshots.
type Plan struct {
	Bindings []BindingChange `json:"bindings"`
	Routes   []RouteChange   `json:"routes"`
	Nodes    []NodeChange    `json:"nodes"`
	Rollouts []RolloutChange `json:"rollouts"`
	// Local are the via-local routes whose servers change (local.go).
	Local []LocalChange `json:"local,omitempty"`
	// Removed and Failovers are filled by Impact: the instances taken
	// away, and the unique services among them.
	Removed   []binding.Instance `json:"removed,omitempty"`
	Failovers []Failover         `json:"failovers,omitempty"`
	// Unhosted is filled by ImpactNode: what the node gone stops rendering.
	Unhosted []Unhosted `json:"unhosted,omitempty"`
	// Notes are caveats a person should read (stale provides, templates
	// whose source is not readable here, services without live nodes).
	Notes []string `json:"notes,omitempty"`
}

// Changed reports whether anything would change.
func (p *Plan) Changed() bool {
	return len(p.Bindings) > 0 || len(p.Removed) > 0 || len(p.Unhosted) > 0
}

// Option configures Compute.
type Option func(*config)

type config struct {
	render Renderer
	hosts  []Host
}

// WithRenderer renders every affected template before and after, so the
// plan carries a unified diff per file; without one it lists bindings,
// nodes and commands only.
func WithRenderer(r Renderer) Option { return func(c *config) { c.render = r } }

// Compute resolves before and after and returns what differs.
func Compute(ctx context.Context, before, after *binding.Snapshot, opts ...Option) (*Plan, error) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := newSides(before, after)
	p := &Plan{}
	p.Bindings, p.Routes = diffBindings(s.before.res, s.after.res)
	p.Notes = staleProvides(before, after)
	nodes, notes, err := s.nodeChanges(ctx, cfg.render, cfg.hosts, p.Bindings)
	if err != nil {
		return nil, err
	}
	p.Nodes, p.Notes = nodes, append(p.Notes, notes...)
	p.Local, p.Nodes = s.localChanges(p.Bindings, cfg.hosts, p.Nodes) // local.go
	p.Notes = append(p.Notes, localNotes(after, s.after.res)...)
	p.Rollouts = s.rollouts(p.Nodes)
	ensureLists(p)
	return p, nil
}

// ensureLists makes empty lists encode as [] rather than null.
func ensureLists(p *Plan) {
	p.Bindings = orEmpty(p.Bindings)
	p.Routes = orEmpty(p.Routes)
	p.Nodes = orEmpty(p.Nodes)
	p.Rollouts = orEmpty(p.Rollouts)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// side is one snapshot resolved, with its manifests by service.
type side struct {
	snap      *binding.Snapshot
	res       *resolver.Result
	manifests map[svcKey]*manifest.Manifest
}

type svcKey struct{ fed, service string }

type sides struct{ before, after side }

func newSides(before, after *binding.Snapshot) *sides {
	return &sides{before: newSide(before), after: newSide(after)}
}

func newSide(snap *binding.Snapshot) side {
	s := side{snap: snap, res: resolver.Resolve(snap), manifests: map[svcKey]*manifest.Manifest{}}
	for i := range snap.Manifests {
		m := &snap.Manifests[i]
		s.manifests[svcKey{manifest.FederationOf(m.Federation), m.ID}] = m
	}
	return s
}

// binding is what a consumer in region reads: its region's binding, else
// the region-less one, as listeners do.
func (s side) binding(fed, service, region string) *binding.Binding {
	for _, r := range binding.ReadRegions(region) {
		if b, ok := s.res.Lookup(fed, service, r); ok {
			return b
		}
	}
	return nil
}

// Publish returns snap as it would be once ms are published and ds set:
// manifests replace those of the same federation and id, datastore values
// replace those of the same federation and key. snap is not modified.
func Publish(snap *binding.Snapshot, ms []manifest.Manifest, ds []binding.Datastore) *binding.Snapshot {
	out := *snap
	out.Manifests = slices.Clone(snap.Manifests)
	for _, m := range ms {
		i := slices.IndexFunc(out.Manifests, func(o manifest.Manifest) bool {
			return manifest.FederationOf(o.Federation) == manifest.FederationOf(m.Federation) && o.ID == m.ID
		})
		if i >= 0 {
			out.Manifests[i] = m
		} else {
			out.Manifests = append(out.Manifests, m)
		}
	}
	slices.SortFunc(out.Manifests, func(a, b manifest.Manifest) int {
		return cmp.Or(cmp.Compare(manifest.FederationOf(a.Federation), manifest.FederationOf(b.Federation)), cmp.Compare(a.ID, b.ID))
	})
	out.Datastores = slices.Clone(snap.Datastores)
	for _, d := range ds {
		i := slices.IndexFunc(out.Datastores, func(o binding.Datastore) bool {
			return manifest.FederationOf(o.Federation) == manifest.FederationOf(d.Federation) && o.Key == d.Key
		})
		if i >= 0 {
			out.Datastores[i] = d
		} else {
			out.Datastores = append(out.Datastores, d)
		}
	}
	slices.SortFunc(out.Datastores, func(a, b binding.Datastore) int {
		return cmp.Or(cmp.Compare(manifest.FederationOf(a.Federation), manifest.FederationOf(b.Federation)), cmp.Compare(a.Key, b.Key))
	})
	return &out
}

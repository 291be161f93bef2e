package plan

import (
	"context"
	"fmt"
	"slices"

	"github.com/patchbay/patchbay/resolver"
)

// Failover is a unique service whose live instance would go away.
type Failover struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Instance   string `json:"instance"`
	Node       string `json:"node"`
	// Note says what happens next: a standby takes the service's lock.
	Note string `json:"note"`
}

// WithoutInstances returns snap without the instances gone reports true
// for, and those instances. snap is not modified.
func WithoutInstances(snap *resolver.Snapshot, gone func(resolver.Instance) bool) (*resolver.Snapshot, []resolver.Instance) {
	out := *snap
	out.Instances = nil
	var removed []resolver.Instance
	for _, in := range snap.Instances {
		if gone(in) {
			removed = append(removed, in)
		} else {
			out.Instances = append(out.Instances, in)
		}
	}
	return &out, removed
}

// Impact is the plan of losing the instances gone reports true for: what
// moves to another provider, falls back to a datastore or becomes
// unresolved, which routes lose upstreams, which unique services fail
// over. Removed instances' own nodes are left out of Nodes: they are the
// ones gone.
func Impact(ctx context.Context, snap *resolver.Snapshot, gone func(resolver.Instance) bool, opts ...Option) (*Plan, error) {
	after, removed := WithoutInstances(snap, gone)
	p, err := Compute(ctx, snap, after, opts...)
	if err != nil {
		return nil, err
	}
	p.Removed = removed
	goneNodes := map[string]bool{}
	for _, in := range removed {
		goneNodes[in.Node] = !slices.ContainsFunc(after.Instances, func(o resolver.Instance) bool { return o.Node == in.Node })
	}
	p.Nodes = slices.DeleteFunc(p.Nodes, func(n NodeChange) bool { return goneNodes[n.Node] })
	p.Failovers = failovers(snap, removed)
	return p, nil
}

func failovers(snap *resolver.Snapshot, removed []resolver.Instance) []Failover {
	unique := map[svcKey]bool{}
	for _, m := range snap.Manifests {
		unique[svcKey{fedOf(m.Federation), m.ID}] = m.Unique
	}
	var out []Failover
	for _, in := range removed {
		if !unique[svcKey{fedOf(in.Federation), in.Service}] {
			continue
		}
		out = append(out, Failover{
			Federation: fedOf(in.Federation), Service: in.Service, Instance: in.ID, Node: in.Node,
			Note: fmt.Sprintf("a standby of %s, if one waits on another node, takes its lock and registers; until then consumers of its keys see the changes above", in.Service),
		})
	}
	return out
}

package plan

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Unhosted is a service a node gone would stop rendering: its files there
// are left as they are, no longer kept in step.
type Unhosted struct {
	Node       string `json:"node"`
	Federation string `json:"federation"`
	Service    string `json:"service"`
	// Files are the destinations of the service's templates.
	Files []string `json:"files"`
	// OtherNodes still host the service; none means nothing renders it.
	OtherNodes []string `json:"other_nodes"`
}

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
func WithoutInstances(snap *binding.Snapshot, gone func(binding.Instance) bool) (*binding.Snapshot, []binding.Instance) {
	out := *snap
	out.Instances = nil
	var removed []binding.Instance
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
func Impact(ctx context.Context, snap *binding.Snapshot, gone func(binding.Instance) bool, opts ...Option) (*Plan, error) {
	after, removed := WithoutInstances(snap, gone)
	p, err := Compute(ctx, snap, after, opts...)
	if err != nil {
		return nil, err
	}
	p.Removed = removed
	goneNodes := map[string]bool{}
	for _, in := range removed {
		goneNodes[in.Node] = !slices.ContainsFunc(after.Instances, func(o binding.Instance) bool { return o.Node == in.Node })
	}
	p.Nodes = slices.DeleteFunc(p.Nodes, func(n NodeChange) bool { return goneNodes[n.Node] })
	p.Failovers = failovers(snap, removed)
	return p, nil
}

// ImpactNode is Impact of losing node: every instance on it, and every
// service its listener hosts, from its instances or from WithHosts (a
// load balancer often registers no instance, and losing it changes no
// binding: what it stops rendering is the impact).
func ImpactNode(ctx context.Context, snap *binding.Snapshot, node string, opts ...Option) (*Plan, error) {
	p, err := Impact(ctx, snap, func(in binding.Instance) bool { return in.Node == node }, opts...)
	if err != nil {
		return nil, err
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	p.Unhosted = unhosted(snap, cfg.hosts, node)
	return p, nil
}

// unhosted lists the services node hosts that render files, with the
// other nodes that host each.
func unhosted(snap *binding.Snapshot, hosts []Host, node string) []Unhosted {
	nodesOf := map[svcKey]map[string]bool{}
	add := func(fed, service, n string) {
		k := svcKey{manifest.FederationOf(fed), service}
		if nodesOf[k] == nil {
			nodesOf[k] = map[string]bool{}
		}
		nodesOf[k][n] = true
	}
	for _, in := range snap.Instances {
		add(in.Federation, in.Service, in.Node)
	}
	for _, h := range hosts {
		add(h.Federation, h.Service, h.Node)
	}
	manifests := map[svcKey]manifest.Manifest{}
	for _, m := range snap.Manifests {
		manifests[svcKey{manifest.FederationOf(m.Federation), m.ID}] = m
	}
	var out []Unhosted
	for _, k := range slices.SortedFunc(maps.Keys(nodesOf), func(a, b svcKey) int {
		return cmp.Or(cmp.Compare(a.fed, b.fed), cmp.Compare(a.service, b.service))
	}) {
		if !nodesOf[k][node] || len(manifests[k].Templates) == 0 {
			continue // a service without templates renders nothing
		}
		u := Unhosted{Node: node, Federation: k.fed, Service: k.service, Files: []string{}, OtherNodes: []string{}}
		for _, name := range slices.Sorted(maps.Keys(manifests[k].Templates)) {
			u.Files = append(u.Files, manifests[k].Templates[name].Destination)
		}
		for _, n := range slices.Sorted(maps.Keys(nodesOf[k])) {
			if n != node {
				u.OtherNodes = append(u.OtherNodes, n)
			}
		}
		out = append(out, u)
	}
	return out
}

func failovers(snap *binding.Snapshot, removed []binding.Instance) []Failover {
	unique := map[svcKey]bool{}
	for _, m := range snap.Manifests {
		unique[svcKey{manifest.FederationOf(m.Federation), m.ID}] = m.Unique
	}
	var out []Failover
	for _, in := range removed {
		if !unique[svcKey{manifest.FederationOf(in.Federation), in.Service}] {
			continue
		}
		out = append(out, Failover{
			Federation: manifest.FederationOf(in.Federation), Service: in.Service, Instance: in.ID, Node: in.Node,
			Note: fmt.Sprintf("a standby of %s, if one waits on another node, takes its lock and registers; until then consumers of its keys see the changes above", in.Service),
		})
	}
	return out
}

package resolver

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/internal/graph"
	"github.com/patchbay/patchbay/manifest"
)

// ErrCycle is matched by the error of Order when services depend on each
// other in a cycle.
var ErrCycle = errkind.New(errkind.Input, "resolver: dependency cycle")

// Graph is who depends on whom, from manifests alone, so it works before
// anything runs. An edge goes from consumer to provider when a requirement's
// key or glob matches a key the provider's manifest provides, or the
// provider provides every key of its template, within one federation; a
// public-only requirement gets edges to public services only. The engine's
// own rules (judge, datastoreVerdict) decide, so the graph shows what can
// bind. Datastores given WithDatastores are nodes
// too (graph_datastores.go), never on a cycle and never in Order; an edge
// reaches one only where the engine would fall back to it.
//
// Nodes are named by service id when every manifest is in one federation,
// and "federation/service" otherwise, so that names stay short in the
// common case and unambiguous in the other.
type Graph struct {
	nodes  []Node // sorted by Name
	edges  []Edge // sorted by (From, To, Var, Key)
	adj    [][]int
	cycles [][]string
	stores []Node // datastores, sorted by Name
	// storeEdges go from consumers to datastores, sorted like edges.
	storeEdges []Edge
}

// Node is one service, or one datastore key.
type Node struct {
	Name       string `json:"name"`
	Federation string `json:"federation"`
	Service    string `json:"service,omitempty"`
	Public     bool   `json:"public,omitempty"`
	OnCycle    bool   `json:"on_cycle,omitempty"`
	// Datastore is the key of a datastore node ("" for a service).
	Datastore string `json:"datastore,omitempty"`
}

// Edge says From requires Var, which Key of To's provides can serve.
type Edge struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Var     string `json:"var"`
	Key     string `json:"key"`
	OnCycle bool   `json:"on_cycle,omitempty"`
}

// BuildGraph builds the graph of ms. Repeated (federation, id) pairs keep
// the first.
func BuildGraph(ms []manifest.Manifest, opts ...GraphOption) *Graph {
	var cfg graphConfig
	for _, o := range opts {
		o(&cfg)
	}
	sorted := graphManifests(ms)
	g := &Graph{}
	qualify := len(sorted) > 0 && manifest.FederationOf(sorted[0].Federation) != manifest.FederationOf(sorted[len(sorted)-1].Federation)
	byName := map[serviceKey]string{}
	for _, m := range sorted {
		n := Node{Name: m.ID, Federation: manifest.FederationOf(m.Federation), Service: m.ID, Public: m.Public}
		if qualify {
			n.Name = n.Federation + "/" + n.Service
		}
		byName[serviceKey{n.Federation, n.Service}] = n.Name
		g.nodes = append(g.nodes, n)
	}
	slices.SortFunc(g.nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	idx := newProvidesIndex(sorted)
	for _, m := range sorted {
		g.edges = append(g.edges, idx.edges(m, byName)...)
	}
	slices.SortFunc(g.edges, compareEdges)
	g.link()
	g.findCycles()
	g.addDatastores(sorted, byName, qualify, cfg.datastores)
	return g
}

func graphManifests(ms []manifest.Manifest) []*manifest.Manifest {
	out := make([]*manifest.Manifest, 0, len(ms))
	for i := range ms {
		out = append(out, &ms[i])
	}
	slices.SortStableFunc(out, func(a, b *manifest.Manifest) int {
		return cmp.Or(cmp.Compare(manifest.FederationOf(a.Federation), manifest.FederationOf(b.Federation)), cmp.Compare(a.ID, b.ID))
	})
	return slices.CompactFunc(out, func(a, b *manifest.Manifest) bool {
		return manifest.FederationOf(a.Federation) == manifest.FederationOf(b.Federation) && a.ID == b.ID
	})
}

func compareEdges(a, b Edge) int {
	return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Var, b.Var), cmp.Compare(a.Key, b.Key))
}

// providesIndex maps, per federation, each provided key to its services.
type providesIndex struct {
	byKey     map[string]map[string][]*manifest.Manifest // fed → key → providers
	keys      map[string][]string                        // fed → sorted keys
	templates map[string]parsedTemplate                  // parsed once, as the engine does
}

func newProvidesIndex(ms []*manifest.Manifest) *providesIndex {
	idx := &providesIndex{byKey: map[string]map[string][]*manifest.Manifest{}, keys: map[string][]string{}, templates: map[string]parsedTemplate{}}
	for _, m := range ms {
		fed := manifest.FederationOf(m.Federation)
		if idx.byKey[fed] == nil {
			idx.byKey[fed] = map[string][]*manifest.Manifest{}
		}
		for k := range m.Provides {
			idx.byKey[fed][k] = append(idx.byKey[fed][k], m)
		}
	}
	for fed, byKey := range idx.byKey {
		idx.keys[fed] = slices.Sorted(maps.Keys(byKey))
	}
	return idx
}

// edges returns the edges of consumer m: to each provider the engine
// would admit (judge), whatever region it runs in, as an instance offering
// what its manifest provides. A template needs a provider of every key, a
// public-only requirement a public provider.
func (idx *providesIndex) edges(m *manifest.Manifest, names map[serviceKey]string) []Edge {
	fed := manifest.FederationOf(m.Federation)
	var out []Edge
	for _, v := range slices.Sorted(maps.Keys(m.Requires)) {
		req := m.Requires[v]
		pl := newPlan(v, req, idx.templates)
		q := query{plan: &pl, fed: fed}
		for _, key := range idx.matching(fed, req) {
			for _, p := range idx.byKey[fed][key] {
				in := binding.Instance{Federation: fed, Service: p.ID, Public: p.Public, Provides: p.Provides}
				if q.judge(&in, false) != kept {
					continue
				}
				out = append(out, Edge{From: names[serviceKey{fed, m.ID}], To: names[serviceKey{fed, p.ID}], Var: v, Key: key})
			}
		}
	}
	return out
}

// matching returns the provided keys of fed that req draws on.
func (idx *providesIndex) matching(fed string, req manifest.Requirement) []string {
	var out []string
	for _, k := range req.Keys() {
		if !manifest.IsGlob(k) {
			out = append(out, k)
			continue
		}
		for _, pk := range idx.keys[fed] {
			if ok, _ := path.Match(k, pk); ok {
				out = append(out, pk)
			}
		}
	}
	return out
}

func (g *Graph) index(name string) int {
	i, _ := slices.BinarySearchFunc(g.nodes, name, func(n Node, s string) int { return cmp.Compare(n.Name, s) })
	return i
}

// link fills the adjacency lists, each sorted and without repeats.
func (g *Graph) link() {
	g.adj = make([][]int, len(g.nodes))
	for _, e := range g.edges {
		from, to := g.index(e.From), g.index(e.To)
		if n := len(g.adj[from]); n == 0 || g.adj[from][n-1] != to {
			g.adj[from] = append(g.adj[from], to) // edges are sorted by (From, To)
		}
	}
}

// findCycles reports one shortest cycle through the first node of every
// group of services that depend on each other, and every self-loop, and
// marks the nodes and edges on cycles.
func (g *Graph) findCycles() {
	cycles := graph.FindCycles(g.adj)
	for _, p := range cycles.Paths() {
		names := make([]string, len(p))
		for i, n := range p {
			names[i] = g.nodes[n].Name
		}
		g.cycles = append(g.cycles, names)
	}
	slices.SortFunc(g.cycles, slices.Compare)
	for i := range g.nodes {
		g.nodes[i].OnCycle = cycles.OnCycle(i)
	}
	for i := range g.edges {
		e := &g.edges[i]
		e.OnCycle = cycles.EdgeOnCycle(g.index(e.From), g.index(e.To))
	}
}

// Nodes returns the services, sorted by name, then the datastores.
func (g *Graph) Nodes() []Node { return slices.Concat(g.nodes, g.stores) }

// Edges returns the edges sorted by (From, To, Var, Key): one per
// provided key a requirement matches; then the edges to datastores.
func (g *Graph) Edges() []Edge { return slices.Concat(g.edges, g.storeEdges) }

// Cycles returns one cycle per group of services that depend on each
// other, and every service that depends on itself, each as a path that
// starts and ends at the same service, in lexical order.
func (g *Graph) Cycles() [][]string {
	out := make([][]string, len(g.cycles))
	for i, c := range g.cycles {
		out[i] = slices.Clone(c)
	}
	return out
}

// Order returns the services in bring-up order: every provider before its
// consumers, ties broken by name. With a cycle there is no such order; the
// error wraps ErrCycle and prints a cycle's path.
func (g *Graph) Order() ([]string, error) {
	if len(g.cycles) > 0 {
		more := ""
		if n := len(g.cycles) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more %s)", n, verb(n, "cycle", "cycles"))
		}
		return nil, fmt.Errorf("%w: %s%s; break it by making one requirement optional or removing it", ErrCycle, strings.Join(g.cycles[0], " → "), more)
	}
	pending := make([]int, len(g.nodes))
	consumers := make([][]int, len(g.nodes))
	for from, tos := range g.adj {
		pending[from] = len(tos)
		for _, to := range tos {
			consumers[to] = append(consumers[to], from)
		}
	}
	ready := &intHeap{}
	for i, n := range pending {
		if n == 0 {
			heap.Push(ready, i)
		}
	}
	order := make([]string, 0, len(g.nodes))
	for ready.Len() > 0 {
		n := heap.Pop(ready).(int)
		order = append(order, g.nodes[n].Name)
		for _, c := range consumers[n] {
			if pending[c]--; pending[c] == 0 {
				heap.Push(ready, c)
			}
		}
	}
	return order, nil
}

// intHeap pops the smallest node index, which is the smallest name since
// nodes are sorted by name.
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// WriteDOT writes the graph for graphviz: one edge per (consumer,
// provider, key) labelled with the key it binds, public services drawn
// with a double border, datastores as cylinders with dashed edges, nodes
// and edges on cycles in red, and one cluster per federation when there
// are several.
func (g *Graph) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph patchbay {\n\trankdir=LR;\n\tnode [shape=box];\n")
	feds := g.federations()
	for _, fed := range feds {
		indent := "\t"
		if len(feds) > 1 {
			fmt.Fprintf(&b, "\tsubgraph %s {\n\t\tlabel=%s;\n", dotQuote("cluster_"+fed), dotQuote(fed))
			indent = "\t\t"
		}
		for _, n := range g.Nodes() {
			if n.Federation == fed {
				b.WriteString(indent + dotNode(n) + "\n")
			}
		}
		if len(feds) > 1 {
			b.WriteString("\t}\n")
		}
	}
	drawn := map[[3]string]bool{}
	for _, e := range g.Edges() {
		if k := [3]string{e.From, e.To, e.Key}; !drawn[k] {
			drawn[k] = true // one arrow per key, whatever number of vars bind it
			b.WriteString("\t" + dotEdge(e) + "\n")
		}
	}
	b.WriteString("}\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("resolver: write dot: %w", err)
	}
	return nil
}

func (g *Graph) federations() []string {
	var feds []string
	for _, n := range g.nodes {
		feds = append(feds, n.Federation)
	}
	slices.Sort(feds)
	return slices.Compact(feds)
}

func dotNode(n Node) string {
	var attrs []string
	if n.Datastore != "" {
		attrs = append(attrs, "shape=cylinder", "label="+dotQuote(n.Datastore+"\n(datastore)"))
	}
	if n.Public {
		attrs = append(attrs, "peripheries=2", "label="+dotQuote(n.Name+"\n(public)"))
	}
	if n.OnCycle {
		attrs = append(attrs, "color=red", "fontcolor=red")
	}
	return dotQuote(n.Name) + dotAttrs(attrs) + ";"
}

func dotEdge(e Edge) string {
	attrs := []string{"label=" + dotQuote(e.Key)}
	if strings.Contains(e.To, datastorePrefix) {
		attrs = append(attrs, "style=dashed")
	}
	if e.OnCycle {
		attrs = append(attrs, "color=red", "fontcolor=red")
	}
	return dotQuote(e.From) + " -> " + dotQuote(e.To) + dotAttrs(attrs) + ";"
}

func dotAttrs(attrs []string) string {
	if len(attrs) == 0 {
		return ""
	}
	return " [" + strings.Join(attrs, ", ") + "]"
}

// dotQuote quotes s as a DOT string; "\n" becomes DOT's line break.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// graphJSON is the JSON form of a Graph.
type graphJSON struct {
	Nodes  []Node     `json:"nodes"`
	Edges  []Edge     `json:"edges"`
	Cycles [][]string `json:"cycles"`
}

// MarshalJSON writes {"nodes": [...], "edges": [...], "cycles": [...]},
// with empty lists rather than null.
func (g *Graph) MarshalJSON() ([]byte, error) {
	j := graphJSON{Nodes: g.Nodes(), Edges: g.Edges(), Cycles: g.cycles}
	if j.Nodes == nil {
		j.Nodes = []Node{}
	}
	if j.Edges == nil {
		j.Edges = []Edge{}
	}
	if j.Cycles == nil {
		j.Cycles = [][]string{}
	}
	return json.Marshal(j)
}

package resolver

import (
	"cmp"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// GraphOption configures BuildGraph.
type GraphOption func(*graphConfig)

type graphConfig struct {
	datastores []binding.Datastore
}

// WithDatastores adds the datastores to the graph: one node per key, and
// an edge from every requirement that would fall back to it.
func WithDatastores(ds []binding.Datastore) GraphOption {
	return func(c *graphConfig) { c.datastores = append(c.datastores, ds...) }
}

// datastorePrefix starts a datastore node's name: a service id is a DNS
// label, so it can never contain the colon.
const datastorePrefix = "datastore:"

// addDatastores adds a node per datastore key of a federation that has
// services, and an edge per key a requirement would fall back to. Whether
// it may fall back is the engine's own decision (datastoreVerdict): a glob
// takes live providers only, a public-only requirement never takes a
// datastore, and a template takes them only when every key is stored.
func (g *Graph) addDatastores(ms []*manifest.Manifest, names map[serviceKey]string, qualify bool, ds []binding.Datastore) {
	feds := map[string]*fedIndex{}
	for _, d := range ds {
		if d.Refused != "" {
			continue // serves nothing
		}
		fed := manifest.FederationOf(d.Federation)
		if feds[fed] == nil {
			feds[fed] = newFedIndex()
		}
		feds[fed].datastores[d.Key] = d.Value
	}
	storeName := func(fed, key string) string {
		if qualify {
			return fed + "/" + datastorePrefix + key
		}
		return datastorePrefix + key
	}
	for fed, fi := range feds {
		for _, k := range slices.Sorted(maps.Keys(fi.datastores)) {
			g.stores = append(g.stores, Node{Name: storeName(fed, k), Federation: fed, Datastore: k})
		}
	}
	slices.SortFunc(g.stores, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	templates := map[string]parsedTemplate{}
	for _, m := range ms {
		fed := manifest.FederationOf(m.Federation)
		fi := feds[fed]
		if fi == nil {
			continue
		}
		for _, v := range slices.Sorted(maps.Keys(m.Requires)) {
			p := newPlan(v, m.Requires[v], templates)
			q := query{plan: &p}
			if p.invalid != "" || q.datastoreVerdict(fi, false) != kept {
				continue
			}
			for _, k := range p.keys {
				g.storeEdges = append(g.storeEdges, Edge{From: names[serviceKey{fed, m.ID}], To: storeName(fed, k), Var: v, Key: k})
			}
		}
	}
	slices.SortFunc(g.storeEdges, compareEdges)
	g.storeEdges = slices.Compact(g.storeEdges)
}

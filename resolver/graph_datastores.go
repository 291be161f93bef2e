package resolver

import (
	"cmp"
	"maps"
	"path"
	"slices"

	"github.com/patchbay/patchbay/manifest"
)

// GraphOption configures BuildGraph.
type GraphOption func(*graphConfig)

type graphConfig struct {
	datastores []Datastore
}

// WithDatastores adds the datastores to the graph: one node per key, and
// an edge from every requirement that would fall back to it.
func WithDatastores(ds []Datastore) GraphOption {
	return func(c *graphConfig) { c.datastores = append(c.datastores, ds...) }
}

// datastorePrefix starts a datastore node's name: a service id is a DNS
// label, so it can never contain the colon.
const datastorePrefix = "datastore:"

// addDatastores adds a node per datastore key of a federation that has
// services, and an edge per requirement key (or glob) that matches it.
// Public-only requirements never fall back to datastores.
func (g *Graph) addDatastores(ms []*manifest.Manifest, names map[serviceKey]string, qualify bool, ds []Datastore) {
	keys := map[string][]string{} // fed → keys
	for _, d := range ds {
		if d.Refused != "" {
			continue // serves nothing
		}
		fed := fedOf(d.Federation)
		keys[fed] = append(keys[fed], d.Key)
	}
	storeName := func(fed, key string) string {
		if qualify {
			return fed + "/" + datastorePrefix + key
		}
		return datastorePrefix + key
	}
	for fed, ks := range keys {
		slices.Sort(ks)
		for _, k := range slices.Compact(ks) {
			g.stores = append(g.stores, Node{Name: storeName(fed, k), Federation: fed, Datastore: k})
		}
	}
	slices.SortFunc(g.stores, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range ms {
		fed := fedOf(m.Federation)
		for _, v := range slices.Sorted(maps.Keys(m.Requires)) {
			req := m.Requires[v]
			if req.Public {
				continue
			}
			for _, k := range keys[fed] {
				if matchesAny(req.Keys(), k) {
					g.storeEdges = append(g.storeEdges, Edge{From: names[serviceKey{fed, m.ID}], To: storeName(fed, k), Var: v, Key: k})
				}
			}
		}
	}
	slices.SortFunc(g.storeEdges, compareEdges)
	g.storeEdges = slices.Compact(g.storeEdges)
}

func matchesAny(patterns []string, key string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

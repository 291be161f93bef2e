package resolver

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

var (
	genFeds      = []string{"default", "seatgeek", "pci"}
	genRegions   = []string{"", "us-1", "eu-1", "ap-1"}
	genKeys      = []string{"A_URL", "B_URL", "C_URL", "DB_HOST", "DB_PORT", "CACHE_ADDR"}
	genGlobs     = []string{"*_URL", "DB_*", "?_URL", "*"}
	genTemplates = []string{"{DB_HOST}:{DB_PORT}", "{A_URL}/{B_URL}", "cache://{CACHE_ADDR}"}
	genModes     = []string{manifest.RegionPreferLocal, manifest.RegionLocalOnly, manifest.RegionAny}
)

func pickOf[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// genCluster builds a random cluster: up to size services over up to
// three federations, instances in four regions (one being none), public
// and private services, datastores, globs and templates.
func genCluster(r *rand.Rand, size int) binding.Snapshot {
	var snap binding.Snapshot
	feds := genFeds[:1+r.IntN(len(genFeds))]
	for i := range 1 + r.IntN(size) {
		m := genManifest(r, pickOf(r, feds), fmt.Sprintf("s%d", i))
		snap.Manifests = append(snap.Manifests, m)
		for j := range r.IntN(6) {
			snap.Instances = append(snap.Instances, genInstance(r, m, j))
		}
	}
	if r.IntN(4) == 0 { // an instance whose manifest is gone
		snap.Instances = append(snap.Instances, genInstance(r, genManifest(r, pickOf(r, feds), "orphan"), 0))
	}
	for _, fed := range feds {
		for _, k := range genKeys {
			if r.IntN(4) == 0 {
				snap.Datastores = append(snap.Datastores, ds(fed, k, "static-"+fed+"-"+k))
			}
		}
	}
	sortSnapshot(&snap)
	return snap
}

func genManifest(r *rand.Rand, fed, id string) manifest.Manifest {
	m := manifest.Manifest{ID: id, Federation: fed, Public: r.IntN(3) == 0, Provides: map[string]string{}, Requires: map[string]manifest.Requirement{}}
	for range r.IntN(4) {
		m.Provides[pickOf(r, genKeys)] = "x"
	}
	for i := range r.IntN(5) {
		m.Requires[fmt.Sprintf("V%d", i)] = genRequirement(r)
	}
	return m
}

func genRequirement(r *rand.Rand) manifest.Requirement {
	var req manifest.Requirement
	switch k := r.IntN(10); {
	case k < 5:
		req = one(pickOf(r, genKeys))
	case k < 7:
		req = one(pickOf(r, genTemplates))
	case k < 9:
		req = all(pickOf(r, genGlobs), minOf(r.IntN(4)))
	default:
		req = all(pickOf(r, genKeys), minOf(r.IntN(3)))
	}
	req.Region = pickOf(r, genModes)
	req.Public = r.IntN(4) == 0
	req.Optional = r.IntN(5) == 0
	return req
}

func genInstance(r *rand.Rand, m manifest.Manifest, j int) binding.Instance {
	node := fmt.Sprintf("n%d", r.IntN(30))
	port := 8000 + j
	in := binding.Instance{
		ID: binding.InstanceID(m.ID, node, port), Service: m.ID, Federation: m.Federation,
		Node: node, Address: "10.1.0." + node[1:], Port: port, Region: pickOf(r, genRegions),
		Index: -1, Public: m.Public, Provides: map[string]string{},
	}
	for k := range m.Provides {
		in.Provides[k] = fmt.Sprintf("%s://%s:%d", k, node, port)
	}
	return in
}

// forClusters runs check on n random clusters of varied size.
func forClusters(t *testing.T, n int, check func(t *testing.T, r *rand.Rand, snap binding.Snapshot)) {
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		snap := genCluster(r, 2+int(seed%40))
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { check(t, r, snap) })
	}
}

type instKey struct{ fed, id string }

func instanceIndex(snap binding.Snapshot) map[instKey]binding.Instance {
	out := map[instKey]binding.Instance{}
	for _, in := range snap.Instances {
		out[instKey{in.Federation, in.ID}] = in
	}
	return out
}

func requirementOf(snap binding.Snapshot, b *binding.Binding, v string) manifest.Requirement {
	for _, m := range snap.Manifests {
		if m.Federation == b.Federation && m.ID == b.Service {
			return m.Requires[v]
		}
	}
	panic("binding without manifest: " + b.Service)
}

// TestPropertyIsolation checks that no provider comes from another
// federation, public-only requirements see public services only,
// local-only ones only their region, and Unresolved matches the vars.
func TestPropertyIsolation(t *testing.T) {
	forClusters(t, 200, func(t *testing.T, _ *rand.Rand, snap binding.Snapshot) {
		insts := instanceIndex(snap)
		stores := map[binding.Datastore]bool{}
		for _, d := range snap.Datastores {
			stores[d] = true
		}
		res := Resolve(&snap)
		for i := range res.Bindings {
			b := &res.Bindings[i]
			for name, v := range b.Vars {
				req := requirementOf(snap, b, name)
				for _, p := range v.Providers {
					checkProvider(t, b, name, req, p, insts, stores)
				}
				_, listed := unresolvedOf(b, name)
				if listed != (!v.Resolved && !req.Optional) || (!v.Resolved && v.Value != "") {
					t.Errorf("%s/%s@%s %s: resolved %v optional %v listed %v value %q", b.Federation, b.Service, b.Region, name, v.Resolved, req.Optional, listed, v.Value)
				}
			}
		}
	})
}

func checkProvider(t *testing.T, b *binding.Binding, name string, req manifest.Requirement, p binding.Provider, insts map[instKey]binding.Instance, stores map[binding.Datastore]bool) {
	t.Helper()
	where := fmt.Sprintf("%s/%s@%s %s from %s%s", b.Federation, b.Service, b.Region, name, p.Instance, p.Key)
	if p.Datastore {
		if !stores[ds(b.Federation, p.Key, p.Value)] || req.Public {
			t.Errorf("%s: datastore not of this federation, or public requirement", where)
		}
		return
	}
	in, ok := insts[instKey{b.Federation, p.Instance}]
	if !ok || in.Provides[p.Key] != p.Value {
		t.Errorf("%s: no such instance in federation %s", where, b.Federation)
	}
	if req.Public && !in.Public {
		t.Errorf("%s: private service reached a public-only requirement", where)
	}
	if req.Region == manifest.RegionLocalOnly && in.Region != b.Region {
		t.Errorf("%s: region %q reached a local-only requirement", where, in.Region)
	}
}

// TestPropertyRemoval removes one instance and checks that only what was
// bound to it moves.
func TestPropertyRemoval(t *testing.T) {
	forClusters(t, 200, func(t *testing.T, r *rand.Rand, snap binding.Snapshot) {
		if len(snap.Instances) == 0 {
			return
		}
		before := Resolve(&snap)
		gone := r.IntN(len(snap.Instances))
		x := snap.Instances[gone]
		after := snap
		after.Instances = slices.Delete(slices.Clone(snap.Instances), gone, gone+1)
		res := Resolve(&after)
		for i := range before.Bindings {
			b1 := &before.Bindings[i]
			b2, ok := res.Lookup(b1.Federation, b1.Service, b1.Region)
			if !ok {
				if b1.Federation != x.Federation || b1.Service != x.Service || b1.Region != x.Region {
					t.Errorf("binding %s/%s@%s vanished with %s", b1.Federation, b1.Service, b1.Region, x.ID)
				}
				continue
			}
			for name, v1 := range b1.Vars {
				checkMoved(t, fmt.Sprintf("%s/%s@%s %s", b1.Federation, b1.Service, b1.Region, name), b1.Federation == x.Federation, x.ID, v1, b2.Vars[name])
			}
		}
		if len(res.Bindings) > len(before.Bindings) {
			t.Errorf("removing an instance added bindings")
		}
	})
}

func withoutInstance(ps []binding.Provider, id string) []binding.Provider {
	return slices.DeleteFunc(slices.Clone(ps), func(p binding.Provider) bool { return p.Instance == id })
}

func checkMoved(t *testing.T, where string, sameFed bool, id string, v1, v2 binding.Var) {
	t.Helper()
	rest := v1.Providers
	if sameFed {
		rest = withoutInstance(v1.Providers, id)
	}
	if len(withoutInstance(v2.Providers, id)) != len(v2.Providers) && sameFed {
		t.Errorf("%s: still bound to removed %s", where, id)
	}
	switch {
	case v1.Select == manifest.SelectOne && len(rest) != len(v1.Providers):
		return // it was bound to the removed instance: it may move anywhere else
	case v1.Select == manifest.SelectOne && !reflect.DeepEqual(v1, v2):
		t.Errorf("%s: moved though not bound to %s:\n%+v\n%+v", where, id, v1, v2)
	case v1.Select == manifest.SelectAll && len(rest) == 0 && len(v1.Providers) > 0:
		return // it listed only the removed instance: the fallback may apply
	case v1.Select == manifest.SelectAll && !slices.Equal(rest, v2.Providers):
		t.Errorf("%s: list changed beyond %s's entries:\n%v\n%v", where, id, instances(v1), instances(v2))
	case v2.Resolved && v2.Select == manifest.SelectAll && v2.Value != binding.JoinValues(v2.Providers):
		t.Errorf("%s: value %q does not join its providers", where, v2.Value)
	}
}

// TestPropertyDeterminism checks byte-identical output for equal cluster
// states, however the snapshot's slices and maps were built.
func TestPropertyDeterminism(t *testing.T) {
	forClusters(t, 200, func(t *testing.T, r *rand.Rand, snap binding.Snapshot) {
		want := mustJSON(t, Resolve(&snap))
		if again := mustJSON(t, Resolve(&snap)); again != want {
			t.Fatal("two resolves of one snapshot differ")
		}
		shuffled := shuffle(r, snap)
		if got := mustJSON(t, Resolve(&shuffled)); got != want {
			t.Fatal("shuffled snapshot resolves differently")
		}
		sortSnapshot(&shuffled)
		if got := mustJSON(t, Resolve(&shuffled)); got != want {
			t.Fatal("shuffled then sorted snapshot resolves differently")
		}
		if !reflect.DeepEqual(shuffled.Instances, snap.Instances) {
			t.Fatal("test bug: re-sorting did not restore the snapshot")
		}
	})
}

// shuffle copies snap with every slice shuffled and every map rebuilt.
func shuffle(r *rand.Rand, snap binding.Snapshot) binding.Snapshot {
	out := binding.Snapshot{
		Manifests:  slices.Clone(snap.Manifests),
		Instances:  slices.Clone(snap.Instances),
		Datastores: slices.Clone(snap.Datastores),
	}
	r.Shuffle(len(out.Manifests), func(i, j int) { out.Manifests[i], out.Manifests[j] = out.Manifests[j], out.Manifests[i] })
	r.Shuffle(len(out.Instances), func(i, j int) { out.Instances[i], out.Instances[j] = out.Instances[j], out.Instances[i] })
	r.Shuffle(len(out.Datastores), func(i, j int) { out.Datastores[i], out.Datastores[j] = out.Datastores[j], out.Datastores[i] })
	for i := range out.Instances {
		out.Instances[i].Provides = maps.Clone(out.Instances[i].Provides)
	}
	for i := range out.Manifests {
		out.Manifests[i].Requires = maps.Clone(out.Manifests[i].Requires)
	}
	return out
}

// TestPropertyExplain checks that Explain, which words every candidate,
// keeps exactly what Resolve bound.
func TestPropertyExplain(t *testing.T) {
	forClusters(t, 200, func(t *testing.T, r *rand.Rand, snap binding.Snapshot) {
		res := Resolve(&snap)
		for range 10 {
			b := &res.Bindings[r.IntN(len(res.Bindings))]
			if len(b.Vars) == 0 {
				continue
			}
			name := pickOf(r, slices.Sorted(maps.Keys(b.Vars)))
			x, err := Explain(&snap, b.Federation, b.Service, b.Region, name)
			if err != nil {
				t.Fatal(err)
			}
			checkExplanation(t, b, name, x)
		}
	})
}

func checkExplanation(t *testing.T, b *binding.Binding, name string, x *Explanation) {
	t.Helper()
	where := fmt.Sprintf("%s/%s@%s %s", b.Federation, b.Service, b.Region, name)
	v := b.Vars[name]
	if !reflect.DeepEqual(x.Result, v) {
		t.Errorf("%s: explained %+v, resolved %+v", where, x.Result, v)
	}
	var kept []binding.Provider
	for _, c := range x.Candidates {
		if c.Reason == "" || (c.Kept && c.Federation != b.Federation) {
			t.Errorf("%s: candidate %+v", where, c)
		}
		if c.Kept {
			kept = append(kept, c.Provider)
		}
	}
	if !slices.Equal(kept, v.Providers) {
		t.Errorf("%s: explain kept %v, resolve bound %v", where, kept, instances(v))
	}
	if u, ok := unresolvedOf(b, name); ok && u.Reason != x.Reason {
		t.Errorf("%s: explain reason %q, resolve %q", where, x.Reason, u.Reason)
	}
}

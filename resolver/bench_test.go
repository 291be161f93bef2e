package resolver

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Synthetic cluster size: the scale Resolve must handle in under a second.
const (
	benchServices  = 10_000
	benchInstances = 100_000
)

var (
	benchFeds    = []string{"default", "seatgeek", "pivotly-pci", "labs"}
	benchRegions = []string{"us-1", "us-2", "eu-1"}
)

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }
func svcKey(i int) string  { return fmt.Sprintf("SVC_%05d_URL", i) }

// benchCluster builds a cluster of benchServices services (three load
// balancers per federation among them) and benchInstances instances.
// Each service provides its own URL key, a third also HOST and PORT keys
// for templates, and one in a hundred a shared key many consumers list.
// Requirements mix select one (mostly prefer-local), templates,
// datastores, select all of shared keys, optional misses and, on the load
// balancers, globs over every URL.
func benchCluster() binding.Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	var snap binding.Snapshot
	for i := range benchServices {
		snap.Manifests = append(snap.Manifests, benchManifest(r, i))
	}
	for i := range benchInstances {
		// Every service gets one instance per region first, then the rest
		// land at random, so popular and lonely services both exist.
		s := i % benchServices
		if i >= 3*benchServices {
			s = r.IntN(benchServices)
		}
		snap.Instances = append(snap.Instances, benchInstance(r, snap.Manifests[s], i))
	}
	for _, fed := range benchFeds {
		for k := range 200 {
			snap.Datastores = append(snap.Datastores, ds(fed, fmt.Sprintf("DB_%03d_URL", k), fmt.Sprintf("postgres://db%d.%s:5432/app", k, fed)))
		}
	}
	sortSnapshot(&snap)
	return snap
}

func benchManifest(r *rand.Rand, i int) manifest.Manifest {
	fed := benchFeds[i%len(benchFeds)]
	m := manifest.Manifest{ID: svcName(i), Federation: fed, Public: r.IntN(5) == 0,
		Provides: map[string]string{svcKey(i): "http://{HOST}:{PORT}/"}, Requires: map[string]manifest.Requirement{}}
	switch i / len(benchFeds) {
	case 0:
		m.ID, m.Public, m.Provides = "lb-public", false, nil
		m.Requires["ROUTES"] = all("*_URL", public, region(manifest.RegionAny), minOf(0))
		return m
	case 1:
		m.ID, m.Provides = "lb-internal", nil
		m.Requires["ROUTES"] = all("*_URL")
		return m
	case 2:
		m.ID, m.Provides = "lb-admin", nil
		m.Requires["ADMIN"] = all("SVC_0*_URL", region(manifest.RegionLocalOnly))
		return m
	}
	if i%3 == 0 {
		m.Provides[fmt.Sprintf("SVC_%05d_HOST", i)] = "{HOST}"
		m.Provides[fmt.Sprintf("SVC_%05d_PORT", i)] = "{PORT}"
	}
	if (i/len(benchFeds))%25 == 7 {
		m.Provides[fmt.Sprintf("SHARED_%d_URL", i/100%10)] = "http://{HOST}:{PORT}/"
	}
	addBenchRequirements(r, &m, i)
	return m
}

// sameFed returns a random service index in i's federation.
func sameFed(r *rand.Rand, i int) int {
	n := benchServices / len(benchFeds)
	return (3+r.IntN(n-3))*len(benchFeds) + i%len(benchFeds)
}

func addBenchRequirements(r *rand.Rand, m *manifest.Manifest, i int) {
	for j := range 2 + r.IntN(3) {
		req := one(svcKey(sameFed(r, i)))
		switch r.IntN(10) {
		case 0:
			req.Region = manifest.RegionAny
		case 1:
			req.Region = manifest.RegionLocalOnly
		}
		m.Requires[fmt.Sprintf("DEP_%d_URL", j)] = req
	}
	if t := sameFed(r, i); r.IntN(5) == 0 && (t/len(benchFeds))%3 == 0 {
		m.Requires["DEP_ADDR"] = one(fmt.Sprintf("tcp://{SVC_%05d_HOST}:{SVC_%05d_PORT}", t, t))
	}
	if r.IntN(10) == 0 {
		m.Requires["DATABASE_URL"] = one(fmt.Sprintf("DB_%03d_URL", r.IntN(200)))
	}
	if r.IntN(10) == 0 {
		m.Requires["SHARED"] = all(fmt.Sprintf("SHARED_%d_URL", r.IntN(10)))
	}
	if r.IntN(20) == 0 {
		m.Requires["MISSING"] = one("NOBODY_PROVIDES_THIS", optional)
	}
}

func benchInstance(r *rand.Rand, m manifest.Manifest, i int) binding.Instance {
	node := fmt.Sprintf("node-%05d", r.IntN(20_000))
	port := 20_000 + i%40_000
	addr := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	reg := benchRegions[i%len(benchRegions)]
	if r.IntN(20) == 0 {
		reg = ""
	}
	in := binding.Instance{
		ID: binding.InstanceID(m.ID, node, port), Service: m.ID, Federation: m.Federation,
		Node: node, Address: addr, Port: port, Region: reg, Index: -1, Public: m.Public,
		Provides: make(map[string]string, len(m.Provides)),
	}
	for k, v := range m.Provides {
		val, _ := manifest.Expand(v, map[string]string{"HOST": addr, "PORT": fmt.Sprint(port)})
		in.Provides[k] = val
	}
	return in
}

func BenchmarkResolveFull(b *testing.B) {
	snap := benchCluster()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Resolve(&snap)
	}
}

// BenchmarkResolveOneInstanceChanged resolves a snapshot in which one
// instance was replaced, as after a restart on another port: Resolve is
// not incremental, so this is the cost of every change the loop sees.
func BenchmarkResolveOneInstanceChanged(b *testing.B) {
	snap := benchCluster()
	Resolve(&snap)
	changed := snap
	changed.Instances = append([]binding.Instance(nil), snap.Instances...)
	in := &changed.Instances[len(changed.Instances)/2]
	in.Port++
	in.ID = binding.InstanceID(in.Service, in.Node, in.Port)
	sortSnapshot(&changed)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Resolve(&changed)
	}
}

// TestBenchClusterShape keeps the benchmark honest about what it measures.
func TestBenchClusterShape(t *testing.T) {
	snap := benchCluster()
	if len(snap.Manifests) != benchServices || len(snap.Instances) != benchInstances {
		t.Fatalf("%d services, %d instances", len(snap.Manifests), len(snap.Instances))
	}
	res := Resolve(&snap)
	counts := map[string]int{}
	for _, b := range res.Bindings {
		for _, v := range b.Vars {
			counts[fmt.Sprintf("%s resolved=%v datastore=%v", v.Select, v.Resolved, len(v.Providers) > 0 && v.Providers[0].Datastore)]++
		}
	}
	routes := mustLookup(t, res, "default", "lb-internal", "").Vars["ROUTES"]
	t.Logf("%d bindings; lb-internal lists %d upstreams; vars: %v", len(res.Bindings), len(routes.Providers), counts)
	if len(routes.Providers) < 10_000 || counts["one resolved=true datastore=true"] == 0 || counts["one resolved=false datastore=false"] == 0 {
		t.Fatalf("cluster lacks the intended mix: %v", counts)
	}
}

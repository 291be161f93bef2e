package registry

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
)

// fuzzKinds are where FuzzResolverReadsStored puts the fuzzed value: the
// kinds of key the resolver reads.
var fuzzKinds = []string{"manifest", "instance", "datastore"}

// FuzzResolverReadsStored feeds arbitrary values, as if written into Consul
// by hand, through the resolver's reading of the registry (addToSnapshot,
// as Snapshot does) and its planning (Resolve, Explain of every var),
// beside the examples. Invariants: nothing panics; a refused value is
// refused with a one-line reason naming its key (quoted if not printable);
// every binding Resolve makes passes DecodeBinding, the rules the listener
// reads it with.
func FuzzResolverReadsStored(f *testing.F) {
	base, seeds := fuzzExamples(f)
	for _, s := range seeds {
		f.Add(s.kind, s.name, s.value)
	}
	f.Add(uint8(0), "sdef", []byte(`{"id":"sdef","federation":"default","tests":[{"name":"empty","command":[]}]}`))
	f.Add(uint8(0), "deep", []byte(`{"id":"deep","environment":{"A":`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`}}`))
	f.Add(uint8(0), "app", []byte(`{"id":"app","requires":{"X":{"key":"A*","select":"one"},"Y":{"template":"{A}{","select":"all","min":-3}}}`))
	f.Add(uint8(1), "api@n:1", []byte(`{"id":"api@n:1","service":"api","federation":"default","node":"n","address":"h","port":1,"index":-7,"provides":{"a b":"\xff"}}`))
	f.Add(uint8(2), "DATABASE_URL", []byte("pw\xff\xfe"))
	// Keys written by hand with a line break, a terminal escape or bytes
	// that are not UTF-8 in a segment.
	f.Add(uint8(0), "\n", []byte("0"))
	f.Add(uint8(1), "api@n:1\x1b[2J", []byte("{}"))
	f.Add(uint8(2), "DB\xff", []byte("x"))
	c := &Client{keys: keys{prefix: DefaultPrefix}}
	// Every instance key held by session "s" is live: its node is an agent
	// shared by all, so liveness never hides what decoding let through.
	live := liveness{nodes: map[string]string{"s": "agent"}, shared: map[string]bool{"agent": true}}
	f.Fuzz(func(t *testing.T, kind uint8, name string, value []byte) {
		snap := &binding.Snapshot{}
		for _, p := range base {
			if err := c.addToSnapshot(snap, p, live); err != nil {
				t.Fatalf("example %s refused: %v", p.Key, err)
			}
		}
		key := fuzzKey(c.keys, fuzzKinds[int(kind)%len(fuzzKinds)], name)
		if err := c.addToSnapshot(snap, &api.KVPair{Key: key, Value: value, Session: "s"}, live); err != nil {
			if !strings.Contains(err.Error(), ShownKey(key)) {
				t.Fatalf("refusal of %s does not name it: %v", ShownKey(key), err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("refusal of %s is not one line: %q", ShownKey(key), err)
			}
		}
		res := resolver.Resolve(snap)
		for _, b := range res.Bindings {
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("binding of %s does not encode: %v", b.Service, err)
			}
			if _, err := binding.DecodeBinding("fuzz", data); err != nil {
				t.Fatalf("Resolve made a binding its readers refuse: %v\n%s", err, data)
			}
			for _, v := range slices.Sorted(maps.Keys(b.Vars)) {
				_, _ = resolver.Explain(snap, b.Federation, b.Service, b.Region, v)
			}
		}
		_, _ = binding.DecodeBinding("fuzz", value)
	})
}

// fuzzKey is the key of a value of kind named name; a name with "/" makes
// the extra segments a hand-written key may have.
func fuzzKey(k keys, kind, name string) string {
	switch kind {
	case "manifest":
		return k.manifest("default", name)
	case "instance":
		service, _, _ := strings.Cut(name, "@")
		return k.instance("default", service, name)
	}
	return k.datastore("default", name)
}

type fuzzSeed struct {
	kind  uint8
	name  string
	value []byte
}

// fuzzExamples returns the examples as the registry stores them, and each
// as a seed.
func fuzzExamples(f *testing.F) ([]*api.KVPair, []fuzzSeed) {
	set, err := manifest.Load("../examples/services")
	if err != nil {
		f.Fatal(err)
	}
	k := keys{prefix: DefaultPrefix}
	var pairs []*api.KVPair
	var seeds []fuzzSeed
	for _, s := range set.Services {
		data, err := json.Marshal(s.Manifest)
		if err != nil {
			f.Fatal(err)
		}
		pairs = append(pairs, &api.KVPair{Key: k.manifest(s.Manifest.Federation, s.Manifest.ID), Value: data})
		seeds = append(seeds, fuzzSeed{0, s.Manifest.ID, data})
	}
	for _, d := range set.Datastores {
		for key, v := range d.Datastores.Values {
			pairs = append(pairs, &api.KVPair{Key: k.datastore(d.Datastores.Federation, key), Value: []byte(v)})
			seeds = append(seeds, fuzzSeed{2, key, []byte(v)})
		}
	}
	in := binding.Instance{ID: "api@api-1:8080", Service: "api", Federation: "default", Node: "api-1", Address: "10.0.0.1", Port: 8080, Region: "eu", Index: -1,
		Provides: map[string]string{"API_URL": "http://10.0.0.1:8080/api"}}
	data, err := json.Marshal(in)
	if err != nil {
		f.Fatal(err)
	}
	pairs = append(pairs, &api.KVPair{Key: k.instance("default", "api", in.ID), Value: data, Session: "s"})
	seeds = append(seeds, fuzzSeed{1, in.ID, data})
	return pairs, seeds
}

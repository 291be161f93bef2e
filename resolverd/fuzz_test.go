package resolverd

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// FuzzLeaderAdoptsStored feeds an arbitrary stored binding (as if written
// into Consul by hand) to the leader's reading of the bindings (adopt)
// and its planning of the next writes (changes), with the examples
// resolved. Invariants: nothing panics; every write's revision is above
// what the leader knew before and at most MaxRevision, never 0 (an event
// would read it as "deleted"); every written binding passes DecodeBinding.
func FuzzLeaderAdoptsStored(f *testing.F) {
	result := fuzzExamplesResolved(f)
	for _, b := range result.Bindings {
		b.Revision = 3
		data, err := json.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b.Service, b.Region, data, uint64(9))
	}
	f.Add("app-www", "", []byte(`{"federation":"default","service":"app-www","region":"","revision":18446744073709551615,"vars":{}}`), uint64(12))
	f.Add("app-www", "", []byte(`{"federation":"default","service":"app-www","region":"","revision":9007199254740991,"vars":{}}`), uint64(12))
	f.Add("app-www", "", []byte("not json {"), uint64(18446744073709551615))
	f.Fuzz(func(t *testing.T, service, region string, value []byte, modifyIndex uint64) {
		ld := &leader{Loop: &Loop{log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
		var list []registry.StoredBinding
		for _, b := range result.Bindings { // what the resolver wrote before, at revision 2
			b.Revision = 2
			data, _ := json.Marshal(b)
			list = append(list, registry.StoredBinding{Federation: b.Federation, Service: b.Service, Region: b.Region, Value: data, ModifyIndex: 5, Key: "k"})
		}
		ld.adopt(list, 5)
		before := ld.stored[bindingKey{"default", service, region}].revision
		list = append(list, registry.StoredBinding{Federation: "default", Service: service, Region: region, Value: value, ModifyIndex: modifyIndex, Key: "fuzz"})
		ld.adopt(list, max(modifyIndex, 5))
		c := ld.changes(result)
		for i, w := range c.writes {
			if w.Delete {
				continue
			}
			b, err := binding.DecodeBinding("write", w.Value)
			if err != nil {
				t.Fatalf("the leader would write a binding its readers refuse: %v", err)
			}
			if b.Revision == 0 || b.Revision > binding.MaxRevision || b.Revision != c.next[i].revision {
				t.Fatalf("write of %s/%s at revision %d (next %d)", b.Service, b.Region, b.Revision, c.next[i].revision)
			}
			if b.Service == service && b.Region == region && b.Revision <= before {
				t.Fatalf("revision of %s went from %d to %d", service, before, b.Revision)
			}
		}
	})
}

func fuzzExamplesResolved(f *testing.F) *resolver.Result {
	set, err := manifest.Load("../examples/services")
	if err != nil {
		f.Fatal(err)
	}
	snap := &binding.Snapshot{}
	for _, s := range set.Services {
		snap.Manifests = append(snap.Manifests, s.Manifest)
	}
	for _, d := range set.Datastores {
		for k, v := range d.Datastores.Values {
			snap.Datastores = append(snap.Datastores, binding.Datastore{Federation: d.Datastores.Federation, Key: k, Value: v})
		}
	}
	snap.Instances = append(snap.Instances, binding.Instance{ID: "api@api-1:8080", Service: "api", Federation: "default", Node: "api-1", Address: "10.0.0.1", Port: 8080, Region: "eu", Index: -1,
		Provides: map[string]string{"API_URL": "http://10.0.0.1:8080/api"}})
	return resolver.Resolve(snap)
}

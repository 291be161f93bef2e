package resolver

import (
	"encoding/json"
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// opt adjusts a requirement built by one or all.
type opt func(*manifest.Requirement)

func public(r *manifest.Requirement)   { r.Public = true }
func optional(r *manifest.Requirement) { r.Optional = true }
func region(mode string) opt           { return func(r *manifest.Requirement) { r.Region = mode } }
func minOf(n int) opt                  { return func(r *manifest.Requirement) { r.Min = &n } }

// one is a normalized select-one requirement of key, or of a template when
// key has braces.
func one(key string, opts ...opt) manifest.Requirement {
	r := manifest.Requirement{Key: key, Select: manifest.SelectOne, Region: manifest.RegionPreferLocal}
	if strings.Contains(key, "{") {
		r.Key, r.Template = "", key
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// all is a normalized select-all requirement with min 1 unless told.
func all(key string, opts ...opt) manifest.Requirement {
	r := one(key, append([]opt{minOf(manifest.DefaultSelectAllMin)}, opts...)...)
	r.Select = manifest.SelectAll
	return r
}

// svc is a manifest; provides lists keys, each valued "http://{HOST}:{PORT}".
func svc(fed, id string, pub bool, requires map[string]manifest.Requirement, provides ...string) manifest.Manifest {
	m := manifest.Manifest{ID: id, Federation: fed, Public: pub, Requires: requires, Provides: map[string]string{}}
	for _, k := range provides {
		m.Provides[k] = "http://{HOST}:{PORT}"
	}
	return m
}

// inst is a live instance of service on node; each provided key's value
// is "<key>@<node>" so tests can tell values apart.
func inst(fed, service, node, reg string, pub bool, keys ...string) binding.Instance {
	in := binding.Instance{
		ID: binding.InstanceID(service, node, 80), Service: service, Federation: fed,
		Node: node, Address: "10.0.0." + node, Port: 80, Region: reg, Index: -1, Public: pub,
		Provides: map[string]string{},
	}
	for _, k := range keys {
		in.Provides[k] = k + "@" + node
	}
	return in
}

func ds(fed, key, value string) binding.Datastore {
	return binding.Datastore{Federation: fed, Key: key, Value: value}
}

// sortSnapshot orders a snapshot the way the registry does.
func sortSnapshot(s *binding.Snapshot) {
	slices.SortFunc(s.Manifests, func(a, b manifest.Manifest) int {
		return strings.Compare(a.Federation+"\x00"+a.ID, b.Federation+"\x00"+b.ID)
	})
	slices.SortFunc(s.Instances, func(a, b binding.Instance) int {
		return strings.Compare(a.Federation+"\x00"+a.Service+"\x00"+a.ID, b.Federation+"\x00"+b.Service+"\x00"+b.ID)
	})
	slices.SortFunc(s.Datastores, func(a, b binding.Datastore) int {
		return strings.Compare(a.Federation+"\x00"+a.Key, b.Federation+"\x00"+b.Key)
	})
}

// loadExamples returns the example manifests and datastores.
func loadExamples(t testing.TB) binding.Snapshot {
	t.Helper()
	set, err := manifest.Load("../examples/services")
	if err != nil {
		t.Fatalf("load examples: %v", err)
	}
	var snap binding.Snapshot
	for _, s := range set.Services {
		snap.Manifests = append(snap.Manifests, s.Manifest)
	}
	for _, f := range set.Datastores {
		for k, v := range f.Datastores.Values {
			snap.Datastores = append(snap.Datastores, ds(f.Datastores.Federation, k, v))
		}
	}
	sortSnapshot(&snap)
	return snap
}

// mustLookup returns a binding or fails.
func mustLookup(t testing.TB, res *Result, fed, service, reg string) *binding.Binding {
	t.Helper()
	b, ok := res.Lookup(fed, service, reg)
	if !ok {
		t.Fatalf("no binding for %s/%s region %q", fed, service, reg)
	}
	return b
}

// unresolvedOf returns the Unresolved entry of name, if any.
func unresolvedOf(b *binding.Binding, name string) (binding.Unresolved, bool) {
	for _, u := range b.Unresolved {
		if u.Var == name {
			return u, true
		}
	}
	return binding.Unresolved{}, false
}

// instances names the providers of v: instance IDs, or "ds:KEY".
func instances(v binding.Var) []string {
	var out []string
	for _, p := range v.Providers {
		if p.Datastore {
			out = append(out, "ds:"+p.Key)
		} else {
			out = append(out, p.Instance+"/"+p.Key)
		}
	}
	return out
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// publishProviders adds a manifest for every instance's service that has
// none, public as the instance says, as if each provider were published.
// Tables that describe providers only by their instances use it.
func publishProviders(s *binding.Snapshot) {
	have := map[[2]string]bool{}
	for _, m := range s.Manifests {
		have[[2]string{m.Federation, m.ID}] = true
	}
	for _, in := range s.Instances {
		k := [2]string{in.Federation, in.Service}
		if !have[k] {
			have[k] = true
			s.Manifests = append(s.Manifests, svc(in.Federation, in.Service, in.Public, nil))
		}
	}
}

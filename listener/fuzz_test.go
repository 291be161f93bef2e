package listener

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

const (
	fuzzService     = "svc"
	fuzzManifestKey = "patchbay/registry/manifests/default/" + fuzzService
	fuzzBindingKey  = "patchbay/bindings/default/" + fuzzService + "/_"
)

// FuzzListenerReadsStored feeds an arbitrary stored manifest and binding
// through what a listener does with them: the registry's decoding
// (registry.DecodeManifest, as ReadNode), then prepare (the binding's
// decoding, allow, rendering every template) and the commands a run would
// plan, on a simulated node that runs and installs nothing. Invariants:
// nothing panics; a refused manifest or binding fails the service with a
// reason naming its key, and nothing of it is rendered.
func FuzzListenerReadsStored(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[0], s[1])
	}
	l, cfg := fuzzListener(f)
	f.Fuzz(func(t *testing.T, manifestJSON, bindingJSON []byte) {
		h := registry.HostedService{Service: fuzzService, Binding: &registry.StoredBinding{
			Federation: "default", Service: fuzzService, Value: bindingJSON, Key: fuzzBindingKey,
		}}
		m, err := registry.DecodeManifest(fuzzManifestKey, "default", fuzzService, manifestJSON)
		if err != nil {
			h.Problem = "invalid manifest: " + err.Error() // as ReadNode
		} else {
			h.Manifest = m
		}
		p := &plan{sc: cfg.Services[0], hosted: h, report: ServiceRun{Service: fuzzService}}
		l.prepare(context.Background(), cfg, p)
		if p.m != nil && !p.done() {
			l.plannedCommands(cfg, p)
		}
		_, bindingErr := binding.DecodeBinding(fuzzBindingKey, bindingJSON)
		switch {
		case h.Problem != "":
			if p.report.Result != ResultFailed || !strings.Contains(p.report.Reason, fuzzManifestKey) {
				t.Fatalf("refused manifest: result %q, reason %q; want failed naming %s", p.report.Result, p.report.Reason, fuzzManifestKey)
			}
		case bindingErr != nil && !strings.HasPrefix(p.report.Reason, "refused:"): // allow refuses first
			if p.report.Result != ResultFailed || !strings.Contains(p.report.Reason, fuzzBindingKey) {
				t.Fatalf("refused binding: result %q, reason %q; want failed naming %s", p.report.Result, p.report.Reason, fuzzBindingKey)
			}
		}
		if (h.Problem != "" || bindingErr != nil) && len(p.files) > 0 {
			t.Fatalf("rendered %d files from a refused input", len(p.files))
		}
	})
}

// fuzzListener is a simulated node hosting fuzzService: commands are
// logged, not run, and no template source on the host may be read.
func fuzzListener(f *testing.F) (*Listener, *Config) {
	dir := f.TempDir()
	path := filepath.Join(dir, "listener.yaml")
	doc := "node: fuzz-1\naddress: 127.0.0.1\nroot: " + filepath.Join(dir, "root") + "\nstate_dir: " + filepath.Join(dir, "state") +
		"\ncontrol: \"off\"\nallow: {commands: [\"**\"]}\nservices:\n  - service: " + fuzzService + "\n    port: 8080\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		f.Fatal(err)
	}
	l, err := New(cfg, nil, WithSimulation(), WithoutDriftWatch(), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		f.Fatal(err)
	}
	return l, cfg
}

// fuzzSeeds are each example manifest, renamed fuzzService, with its
// binding as the resolver makes it from the examples, plus the inputs of
// the issue: an empty test command and revisions that would wrap.
func fuzzSeeds(f *testing.F) [][2][]byte {
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
	snap.Instances = append(snap.Instances, binding.Instance{ID: "api@api-1:8080", Service: "api", Federation: "default", Node: "api-1", Address: "10.0.0.1", Port: 8080, Index: -1,
		Provides: map[string]string{"API_URL": "http://10.0.0.1:8080/api", "READONLY_API_URL": "http://10.0.0.1:8080/ro"}})
	res := resolver.Resolve(snap)
	var seeds [][2][]byte
	for _, s := range set.Services {
		m := s.Manifest
		b, _ := res.Lookup(m.Federation, m.ID, "")
		m.ID = fuzzService
		bc := *b
		bc.Service, bc.Revision = fuzzService, 7
		md, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		bd, err := json.Marshal(bc)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, [2][]byte{md, bd})
	}
	env := `{"id":"svc","federation":"default","templates":{"env":{"source":"builtin:env","destination":"/etc/svc/env","perms":"0640","min":1,"timeout":"30s"}}`
	binding := `{"federation":"default","service":"svc","region":"","revision":%s,"vars":{"X":{"select":"one","value":"%s","resolved":true}}}`
	for _, s := range [][2]string{
		{env + `,"tests":[{"name":"empty","command":[],"timeout":"30s"}]}`, fmt.Sprintf(binding, "1", "v")},
		{env + `}`, fmt.Sprintf(binding, "1", "pw\xff\xfe")},
		{env + `}`, fmt.Sprintf(binding, "18446744073709551615", "v")},
		{env + `}`, fmt.Sprintf(binding, "9007199254740992", "v")},
		{env + `}`, `{"federation":"default","service":"other","region":"","revision":2,"vars":{}}`},
	} {
		seeds = append(seeds, [2][]byte{[]byte(s[0]), []byte(s[1])})
	}
	return seeds
}

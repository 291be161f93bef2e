package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/lbtest"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

func lbManifest() *manifest.Manifest {
	one := 1
	return &manifest.Manifest{ID: "lb", Provision: &manifest.Provision{Command: []string{"manifest-cmd"}}, Templates: map[string]manifest.TemplateFile{
		"a": {Contents: "x", Destination: "/etc/a", Min: &one},
		"b": {Contents: "y", Destination: "/etc/b"},
	}}
}

// withheldBinding is lb's binding once policy withheld its only provider
// of ROUTES, at 10.0.0.1:80.
func withheldBinding() *binding.Binding {
	return &binding.Binding{Service: "lb", Region: "", Vars: map[string]binding.Var{"ROUTES": {
		Select: "all", Withheld: &binding.Withholding{Providers: []binding.Withheld{{Instance: "web@n:80", Service: "web", Key: "WEB_URL", Value: "http://10.0.0.1:80", Reason: binding.WithheldUnpublished}}},
	}}, Unresolved: []binding.Unresolved{{Var: "ROUTES", Reason: "no live provider"}}}
}

func installed(files map[string]string) func(string) ([]byte, bool) {
	return func(name string) ([]byte, bool) {
		s, ok := files[name]
		return []byte(s), ok
	}
}

func TestPrepare(t *testing.T) {
	node := Node{Name: "n1", Federation: "default", Region: "eu"}
	ready := &binding.Binding{Service: "lb", Vars: map[string]binding.Var{}}
	for _, tc := range []struct {
		name           string
		in             Input
		result, reason string
		policy         bool
		renders        []string
	}{
		{"refused input fails", Input{Problem: "invalid manifest: x"}, ResultFailed, "invalid manifest: x", false, nil},
		{"not published", Input{}, ResultSkipped, "not published in federation default", false, nil},
		{"no binding", Input{Manifest: lbManifest()}, ResultSkipped, "no binding stored yet", false, nil},
		{"unresolved keeps the last good files", Input{Manifest: lbManifest(), Binding: withheldBinding(), Installed: installed(map[string]string{"a": "server 10.0.0.2:80"}), Locate: templates.LocateUpstream},
			ResultSkipped, "ROUTES unresolved (no live provider); its files keep their last good version", false, nil},
		{"policy beats last good", Input{Manifest: lbManifest(), Binding: withheldBinding(), Installed: installed(map[string]string{"a": "server 10.0.0.1:80\n", "b": "other"}), Locate: templates.LocateUpstream},
			ResultSkipped, "ROUTES unresolved (no live provider); a rendered without the providers policy no longer allows", true, []string{"a"}},
		{"ready renders every template", Input{Manifest: lbManifest(), Binding: ready}, "", "", false, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Prepare(node, tc.in)
			if s.Result != tc.result || !strings.HasPrefix(s.Reason, tc.reason) || s.Policy != tc.policy {
				t.Fatalf("result %q, reason %q, policy %v; want %q, %q…, %v", s.Result, s.Reason, s.Policy, tc.result, tc.reason, tc.policy)
			}
			var names []string
			for _, r := range s.Renders {
				names = append(names, r.Template)
				if r.Region != "eu" {
					t.Errorf("%s renders with region %q, want the node's", r.Template, r.Region)
				}
				if s.Policy && (r.Min != 0 || !r.Binding.Vars["ROUTES"].Resolved) {
					t.Errorf("policy render of %s: min %d, ROUTES %+v; want no guard and an empty route", r.Template, r.Min, r.Binding.Vars["ROUTES"])
				}
			}
			if !slices.Equal(names, tc.renders) {
				t.Fatalf("renders %v, want %v", names, tc.renders)
			}
			if due, _ := s.ProvisionDue(true); due != (tc.result == "") {
				t.Errorf("provision due %v after a change", due)
			}
		})
	}
}

func TestGuardEvicts(t *testing.T) {
	b := withheldBinding()
	b.Vars["ROUTES"] = binding.Var{Select: "all", Resolved: true, Withheld: b.Vars["ROUTES"].Withheld}
	b.Unresolved = nil
	in := Input{Manifest: lbManifest(), Binding: b, Installed: installed(map[string]string{"a": "server 10.0.0.1:80\n", "b": "server 10.0.0.9:80\n"}), Locate: templates.LocateUpstream}
	s := Prepare(Node{}, in)
	if !s.GuardEvicts("a") || s.GuardEvicts("b") {
		t.Fatalf("guard evicts a %v, b %v; want only a, whose file routes to the withheld provider", s.GuardEvicts("a"), s.GuardEvicts("b"))
	}
}

func TestProvisionOf(t *testing.T) {
	m := lbManifest()
	node := &manifest.Provision{Command: []string{"node-cmd"}}
	if got := ProvisionOf(Hosted{Service: "lb", Provision: node}, m); got != node {
		t.Fatalf("override: %+v", got)
	}
	if got := ProvisionOf(Hosted{Service: "lb"}, m); got != m.Provision {
		t.Fatalf("manifest's: %+v", got)
	}
	if got := ProvisionOf(Hosted{}, nil); got != nil {
		t.Fatalf("none: %+v", got)
	}
}

func TestProvisionDue(t *testing.T) {
	s := Prepare(Node{}, Input{Manifest: lbManifest(), Binding: &binding.Binding{}, Provisioned: true})
	if due, _ := s.ProvisionDue(false); due {
		t.Fatal("due without a change of files or inputs")
	}
	if due, why := s.ProvisionDue(true); !due || why != "files change" {
		t.Fatalf("a change of files: due %v (%s)", due, why)
	}
	s = Prepare(Node{}, Input{Manifest: lbManifest(), Binding: &binding.Binding{}})
	if due, _ := s.ProvisionDue(false); !due {
		t.Fatal("inputs changed since the last provision: not due")
	}
}

func TestDecide(t *testing.T) {
	opts := map[string]string{"stats_socket": "/run/haproxy.sock", "runtime_api": "true"}
	one, two := lbtest.RenderHAProxy(t, opts, "8001"), lbtest.RenderHAProxy(t, opts, "8001", "8002")
	hap := manifest.TemplateFile{Source: manifest.BuiltinPrefix + "haproxy", Options: opts, Reload: []string{"reload"}}
	for _, tc := range []struct {
		name            string
		spec            manifest.TemplateFile
		prev, next      []byte
		existed         bool
		changed         bool
		apply, whyStart string
	}{
		{"same file", manifest.TemplateFile{Reload: []string{"r"}}, []byte("x"), []byte("x"), true, false, "", ""},
		{"new file, no reload", manifest.TemplateFile{}, nil, []byte("x"), false, true, ApplyInstall, ""},
		{"changed, reload", manifest.TemplateFile{Reload: []string{"r"}}, []byte("x"), []byte("y"), true, true, ApplyReload, ""},
		{"haproxy server added", hap, one, two, true, true, ApplyRuntime, ""},
		{"haproxy not installed yet", hap, nil, two, false, true, ApplyReload, "no installed file"},
		{"haproxy structure changed", hap, one, lbtest.RenderHAProxy(t, map[string]string{"stats_socket": "/run/haproxy.sock", "runtime_api": "true", "maxconn": "9"}, "8001"), true, true, ApplyReload, "HAProxy config changed beyond its servers"},
		{"haproxy without a socket", manifest.TemplateFile{Source: hap.Source, Options: map[string]string{"runtime_api": "true"}, Reload: hap.Reload}, one, two, true, true, ApplyReload, "runtime_api needs the stats_socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Decide(tc.spec, tc.prev, tc.existed, tc.next)
			if f.Changed != tc.changed || f.Apply != tc.apply || !strings.HasPrefix(f.Why, tc.whyStart) || (f.Runtime != nil) != (tc.apply == ApplyRuntime) {
				t.Fatalf("decided %+v; want changed %v, apply %q, why %q…", f, tc.changed, tc.apply, tc.whyStart)
			}
		})
	}
}

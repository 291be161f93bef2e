package listener

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// localPlan is a hosted service requiring vars via local, each bound to
// port with the given provider values.
func localPlan(service string, vars map[string]binding.Var) *plan {
	m := &manifest.Manifest{ID: service, Requires: map[string]manifest.Requirement{}}
	for name := range vars {
		m.Requires[name] = manifest.Requirement{Key: "K_" + name, Select: manifest.SelectOne, Via: manifest.ViaLocal}
	}
	return &plan{m: m, hosted: registry.HostedService{Service: service}, binding: &binding.Binding{Service: service, Vars: vars}}
}

func localVar(port int, values ...string) binding.Var {
	v := binding.Var{Select: manifest.SelectOne, Resolved: true, Local: &binding.LocalRoute{Port: port, Mode: binding.LocalHTTP}}
	for i, val := range values {
		v.Providers = append(v.Providers, binding.Provider{Value: val, Instance: "api@n" + string(rune('1'+i)) + ":80"})
	}
	return v
}

// TestLocalRoutesRefuse: the node's rules on local ports and providers,
// each refusal naming the consumer, the key and what to do.
func TestLocalRoutesRefuse(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		vars     map[string]binding.Var
		routes   []string // keys served
		problems []string // substrings, one per problem
	}{
		{name: "served", vars: map[string]binding.Var{"A": localVar(7001, "http://10.0.0.1:80/v1", "http://10.0.0.2:80/v1")}, routes: []string{"K_A"}},
		{name: "privileged", vars: map[string]binding.Var{"A": localVar(80, "http://10.0.0.1:80")}, problems: []string{"www.A: K_A is not served locally: local_port 80 is privileged"}},
		{name: "privileged allowed", cfg: Config{LocalLB: LocalLBConfig{PrivilegedPorts: true}}, vars: map[string]binding.Var{"A": localVar(80, "http://10.0.0.1:80")}, routes: []string{"K_A"}},
		{name: "hosted port", cfg: Config{Services: []ServiceConfig{{Service: "api", Port: 7001}}}, vars: map[string]binding.Var{"A": localVar(7001, "http://10.0.0.1:80")}, problems: []string{"local_port 7001 is where api listens on this node"}},
		{name: "out of range", vars: map[string]binding.Var{"A": localVar(70000, "http://10.0.0.1:80")}, problems: []string{"local_port 70000 is not a port"}},
		{name: "two keys one port", vars: map[string]binding.Var{"A": localVar(7001, "http://10.0.0.1:80"), "B": localVar(7001, "http://10.0.0.2:80")}, routes: []string{"K_A"}, problems: []string{"www.B: K_B is not served locally: local_port 7001 already serves K_A"}},
		{name: "host name left out", vars: map[string]binding.Var{"A": localVar(7001, "http://api.internal:80", "http://10.0.0.2:80")}, routes: []string{"K_A"}, problems: []string{"provider api@n1:80 left out of the local load balancer: host api.internal is not an IP address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := localRoutes(&c.cfg, []*plan{localPlan("www", c.vars)}, nil)
			var keys []string
			for k := range rs.routes {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, c.routes) {
				t.Errorf("routes %v; want %v", keys, c.routes)
			}
			if len(rs.problems) != len(c.problems) {
				t.Fatalf("problems %q; want %d like %q", rs.problems, len(c.problems), c.problems)
			}
			for i, p := range c.problems {
				if !strings.Contains(rs.problems[i], p) {
					t.Errorf("problem %q; want it to contain %q", rs.problems[i], p)
				}
			}
		})
	}
}

// TestLocalRoutesKeepFrontend: a var whose providers are all gone keeps
// its frontend with no server, so that their return costs no reload.
func TestLocalRoutesKeepFrontend(t *testing.T) {
	first := localRoutes(&Config{}, []*plan{localPlan("www", map[string]binding.Var{"A": localVar(7001, "http://10.0.0.1:80")})}, nil)
	prev := map[string]templates.LocalRoute{"K_A": *first.routes["K_A"]}
	gone := localRoutes(&Config{}, []*plan{localPlan("www", map[string]binding.Var{"A": {Select: manifest.SelectOne}})}, prev)
	r, ok := gone.routes["K_A"]
	if !ok || r.Port != 7001 || len(r.Servers) != 0 {
		t.Fatalf("route %+v (kept %v); want port 7001 with no server", r, ok)
	}
}

// TestConsumerView: the providers of a via-local var are not part of
// what the consumer sees; its value and every other var are.
func TestConsumerView(t *testing.T) {
	base := func() *binding.Binding {
		return &binding.Binding{Service: "www", Revision: 3, Vars: map[string]binding.Var{
			"A": localVar(7001, "http://10.0.0.1:80/v1"),
			"B": {Select: manifest.SelectOne, Resolved: true, Value: "x", Providers: []binding.Provider{{Value: "x", Instance: "db@n1:1"}}},
		}}
	}
	same := []func(*binding.Binding){
		func(b *binding.Binding) { b.Revision = 9 },
		func(b *binding.Binding) {
			b.Vars["A"] = localVar(7001, "http://10.0.0.7:80/v1", "http://10.0.0.8:80/v1")
		},
	}
	changed := []func(*binding.Binding){
		func(b *binding.Binding) { v := b.Vars["A"]; v.Value = "http://127.0.0.1:7002/v1"; b.Vars["A"] = v },
		func(b *binding.Binding) {
			b.Vars["B"] = binding.Var{Select: manifest.SelectOne, Resolved: true, Value: "x", Providers: []binding.Provider{{Value: "x", Instance: "db@n2:1"}}}
		},
	}
	want := consumerView(base())
	for i, f := range same {
		b := base()
		f(b)
		if consumerView(b) != want {
			t.Errorf("same %d: the view changed", i)
		}
	}
	for i, f := range changed {
		b := base()
		f(b)
		if consumerView(b) == want {
			t.Errorf("changed %d: the view did not change", i)
		}
	}
}

func TestLocalLBConfigProblems(t *testing.T) {
	path := writeListenerYAML(t, "node: n1\nlocal_lb: {config: lb.cfg, socket: /run/x.sock, check_inter: 10ms}\nservices:\n  - service: www\n")
	_, err := LoadConfig(path)
	for _, want := range []string{
		`:2: local_lb.config: "lb.cfg" is not an absolute path; give where the listener keeps the local HAProxy's config, like /var/lib/patchbay/local-haproxy.cfg`,
		`:2: local_lb.check_inter: 10ms is shorter than 100ms`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig error %v; want %q", err, want)
		}
	}
	cfg := &Config{StateDir: "/srv/pb"}
	if lb := cfg.localLB(); lb.Config != "/srv/pb/local-haproxy.cfg" || lb.Socket != "/srv/pb/local-haproxy.sock" || lb.Program != "haproxy" {
		t.Errorf("defaults %+v; want beneath state_dir and haproxy", lb)
	}
}

// TestLocalLBRefusedConfigInstallsNothing: a config the program's check
// refuses is neither installed nor run, and status says why.
func TestLocalLBRefusedConfigInstallsNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{File: "listener.yaml", StateDir: dir, LocalLB: LocalLBConfig{Program: "false"}}
	lb := newLocalLB(slog.New(slog.DiscardHandler), nil, nil)
	lb.sync(t.Context(), cfg, []*plan{localPlan("www", map[string]binding.Var{"A": localVar(7001, "http://10.0.0.1:80")})})
	if _, err := os.Stat(filepath.Join(dir, "local-haproxy.cfg")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("config installed (stat: %v); want none", err)
	}
	r := lb.Report()
	if r == nil || r.Running || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "false -c refused the config") {
		t.Fatalf("report %+v; want not running, one problem naming the refused check", r)
	}
}

// TestLocalDetails: status shows each route, its consumers and servers,
// and the problems, never a provided value.
func TestLocalDetails(t *testing.T) {
	rs := localRoutes(&Config{}, []*plan{localPlan("www", map[string]binding.Var{
		"A": localVar(7001, "http://u:s3cr3t@10.0.0.1:80/v1"),
		"B": localVar(80, "http://10.0.0.2:80"),
	})}, nil)
	lb := newLocalLB(slog.New(slog.DiscardHandler), nil, nil)
	var routes []templates.LocalRoute
	for _, r := range rs.routes {
		routes = append(routes, *r)
	}
	lb.note(&Config{LocalLB: LocalLBConfig{Config: "/x/lb.cfg"}}, rs, routes)
	d := map[string]string{}
	localDetails(d, lb.Report())
	got := d[LocalDetailKey]
	for _, want := range []string{"K_A at 127.0.0.1:7001 (http) for www.A: 1 servers [api_n1_80 at 10.0.0.1:80]", "problems: www.B: K_B is not served locally: local_port 80 is privileged"} {
		if !strings.Contains(got, want) {
			t.Errorf("detail %q; want %q", got, want)
		}
	}
	if strings.Contains(got, "s3cr3t") {
		t.Errorf("detail %q quotes a provided value", got)
	}
}

package plan

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

const (
	apiDoc = "id: api\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}\n"
	webDoc = "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n"
	wwwDoc = `id: www
requires: {API_URL: "{API_URL}"}
rollout: {group: www, concurrency: 2}
provision: {command: [true]}
templates:
  env: {source: "builtin:env", destination: /etc/www.env, reload: [systemctl, reload, www]}
`
	lbDoc = `id: lb
requires:
  ROUTES: {key: "*_URL", select: all, public: true, region: any}
templates:
  hosts:
    contents: "{{ range routes \"ROUTES\" }}{{ .Name }}:{{ range .Upstreams }} {{ .HostPort }}{{ end }}\n{{ end }}"
    destination: /etc/lb.conf
    reload: [lb, reload]
`
)

func parse(t *testing.T, docs ...string) []manifest.Manifest {
	t.Helper()
	var out []manifest.Manifest
	for _, d := range docs {
		m, err := manifest.Parse("test.yaml", []byte(d))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

func inst(service, node string, port int, public bool, key string) binding.Instance {
	url := "http://10.0.0." + node[len(node)-1:] + ":" + strconv.Itoa(port)
	return binding.Instance{ID: binding.InstanceID(service, node, port), Service: service, Federation: "default",
		Node: node, Address: "10.0.0." + node[len(node)-1:], Port: port, Index: -1, Public: public,
		Provides: map[string]string{key: url}}
}

// fixture: one api on n1, two webs (n1, n2), www on n3 and lb on n4,
// instances sorted as a registry snapshot is.
func fixture(t *testing.T) *binding.Snapshot {
	return &binding.Snapshot{
		Manifests: parse(t, apiDoc, lbDoc, webDoc, wwwDoc),
		Instances: []binding.Instance{
			inst("api", "n1", 8001, false, "API_URL"),
			inst("lb", "n4", 8080, false, "LB_ADMIN"),
			inst("web", "n1", 8002, true, "WEB_URL"),
			inst("web", "n2", 8002, true, "WEB_URL"),
			inst("www", "n3", 8003, false, "WWW_ADMIN"),
		},
	}
}

func compute(t *testing.T, before, after *binding.Snapshot) *Plan {
	t.Helper()
	p, err := Compute(context.Background(), before, after, WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNoChange(t *testing.T) {
	snap := fixture(t)
	p := compute(t, snap, snap)
	if p.Changed() || len(p.Nodes) != 0 || len(p.Routes) != 0 {
		t.Fatalf("plan of no change: %+v", p)
	}
	var b strings.Builder
	if err := p.WriteText(&b); err != nil || !strings.HasPrefix(b.String(), "no change") {
		t.Fatalf("text %q, err %v", b.String(), err)
	}
}

func findVar(p *Plan, service, v string) *VarChange {
	for _, c := range p.Bindings {
		if c.Service != service {
			continue
		}
		for i := range c.Vars {
			if c.Vars[i].Var == v {
				return &c.Vars[i]
			}
		}
	}
	return nil
}

func findRun(p *Plan, node, service string) *model.ServiceRun {
	for _, n := range p.Nodes {
		for i := range n.Services {
			if n.Node == node && n.Services[i].Service == service {
				return &n.Services[i]
			}
		}
	}
	return nil
}

func TestPublishUnresolvedAndDatastore(t *testing.T) {
	snap := fixture(t)
	tests := []struct {
		name     string
		docs     []string
		ds       []binding.Datastore
		kind     string
		skipped  bool
		diffHas  string
		provided bool
	}{
		{"requirement nobody provides", []string{strings.Replace(wwwDoc, `"{API_URL}"`, `"{MISSING_URL}"`, 1)}, nil, KindUnresolved, true, "", false},
		{"datastore replaces nothing: live beats it", []string{wwwDoc}, []binding.Datastore{{Federation: "default", Key: "API_URL", Value: "http://db"}}, "", false, "", false},
		{"new requirement served by a datastore", []string{strings.Replace(wwwDoc, "requires: {", "requires: {DB: \"{DB_URL}\", ", 1)}, []binding.Datastore{{Federation: "default", Key: "DB_URL", Value: "postgres://db"}}, KindAdded, false, "+export DB='(masked)'", true}, // a datastore value: masked (redact)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := Publish(snap, parse(t, tt.docs...), tt.ds)
			p := compute(t, snap, after)
			if tt.kind == "" {
				if p.Changed() {
					t.Fatalf("want no change, got %+v", p.Bindings)
				}
				return
			}
			var v *VarChange
			for _, c := range p.Bindings {
				if c.Service == "www" && len(c.Vars) > 0 {
					v = &c.Vars[0]
				}
			}
			if v == nil || v.Kind != tt.kind {
				t.Fatalf("www change: %+v", p.Bindings)
			}
			run := findRun(p, "n3", "www")
			if run == nil || (run.Result == model.ResultSkipped) != tt.skipped {
				t.Fatalf("run on n3: %+v", run)
			}
			if tt.skipped && (v.Reason == "" || !strings.Contains(run.Reason, "MISSING_URL")) {
				t.Fatalf("no reason: %+v / %+v", v, run)
			}
			if tt.diffHas != "" && (len(run.Templates) != 1 || !strings.Contains(run.Templates[0].Diff, tt.diffHas)) {
				t.Fatalf("files %+v, want a diff with %q", run.Templates, tt.diffHas)
			}
			if tt.provided && (run.Provision == nil || len(p.Rollouts) != 1 || p.Rollouts[0].Group != "www" || p.Rollouts[0].Concurrency != 2) {
				t.Fatalf("provision %v, rollouts %+v", run.Provision, p.Rollouts)
			}
		})
	}
}

func TestImpactNode(t *testing.T) {
	snap := fixture(t)
	snap.Datastores = []binding.Datastore{{Federation: "default", Key: "API_URL", Value: "http://api.example"}}
	p, err := Impact(context.Background(), snap, func(in binding.Instance) bool { return in.Node == "n1" }, WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Removed) != 2 {
		t.Fatalf("removed %+v", p.Removed)
	}
	if v := findVar(p, "www", "API_URL"); v == nil || v.Kind != KindDatastore || v.After != "(masked)" { // a datastore value (redact)
		t.Fatalf("www API_URL: %+v", v)
	}
	if len(p.Routes) != 1 || p.Routes[0].Key != "WEB_URL" || p.Routes[0].Before != 2 || p.Routes[0].After != 1 || p.Routes[0].Empty {
		t.Fatalf("routes %+v", p.Routes)
	}
	run := findRun(p, "n4", "lb")
	if run == nil || len(run.Templates) != 1 || !strings.Contains(run.Templates[0].Diff, "-web: 10.0.0.1:8002 10.0.0.2:8002") {
		t.Fatalf("lb run %+v", run)
	}
	if len(p.Nodes) != 2 || findRun(p, "n1", "api") != nil {
		t.Fatalf("nodes %+v: want n3 and n4, never the node gone", p.Nodes)
	}
	if len(p.Nodes[1].Reloads) != 1 || p.Nodes[1].Reloads[0][0] != "lb" {
		t.Fatalf("reloads of n4: %+v", p.Nodes[1].Reloads)
	}
}

func TestImpactEmptiesRouteAndFailsOver(t *testing.T) {
	snap := fixture(t)
	snap.Manifests = parse(t, strings.Replace(apiDoc, "id: api\n", "id: api\nunique: true\n", 1), lbDoc, webDoc, wwwDoc)
	p, err := Impact(context.Background(), snap, func(in binding.Instance) bool { return in.Node == "n1" || in.Node == "n2" }, WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Routes) != 1 || !p.Routes[0].Empty || p.Routes[0].After != 0 {
		t.Fatalf("routes %+v", p.Routes)
	}
	if len(p.Failovers) != 1 || p.Failovers[0].Service != "api" {
		t.Fatalf("failovers %+v", p.Failovers)
	}
	if v := findVar(p, "www", "API_URL"); v == nil || v.Kind != KindUnresolved || v.Reason == "" {
		t.Fatalf("www API_URL: %+v", v)
	}
	if run := findRun(p, "n4", "lb"); run == nil || run.Result != model.ResultSkipped {
		t.Fatalf("lb with no upstream must be skipped: %+v", run)
	}
	var b strings.Builder
	_ = p.WriteText(&b)
	for _, want := range []string{"EMPTY: no upstream left", "unique service api fails over", "API_URL [unresolved]"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// A node that hosts a service without an instance (a load balancer known
// from its status) is answerable: losing it changes no binding, and what
// it stops rendering is the impact.
func TestImpactNodeWithoutInstances(t *testing.T) {
	snap := fixture(t)
	hosts := WithHosts([]Host{{Node: "n5", Federation: "default", Service: "lb"}})
	p, err := ImpactNode(context.Background(), snap, "n5", hosts)
	if err != nil {
		t.Fatal(err)
	}
	want := []Unhosted{{Node: "n5", Federation: "default", Service: "lb", Files: []string{"/etc/lb.conf"}, OtherNodes: []string{"n4"}}}
	if !reflect.DeepEqual(p.Unhosted, want) || len(p.Removed) != 0 || len(p.Bindings) != 0 || !p.Changed() {
		t.Fatalf("unhosted %+v, removed %+v, bindings %+v, changed %v; want %+v", p.Unhosted, p.Removed, p.Bindings, p.Changed(), want)
	}
	// The only lb: nothing else renders it.
	p, err = ImpactNode(context.Background(), snap, "n4")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Unhosted) != 1 || p.Unhosted[0].Service != "lb" || len(p.Unhosted[0].OtherNodes) != 0 {
		t.Fatalf("unhosted %+v", p.Unhosted)
	}
	var b strings.Builder
	if err := p.WriteText(&b); err != nil || !strings.Contains(b.String(), "node n4 stops rendering lb (federation default): /etc/lb.conf; no other node renders it\n") {
		t.Fatalf("text (%v):\n%s", err, b.String())
	}
	if p, err := ImpactNode(context.Background(), snap, "nowhere"); err != nil || p.Changed() || len(p.Unhosted) != 0 {
		t.Fatalf("impact of no node: %+v, %v", p, err)
	}
}

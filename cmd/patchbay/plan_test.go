package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/plan"
	"github.com/patchbay/patchbay/registry"
)

// planServices is a multi-service fixture: a unique api, a public web
// behind a load balancer, and www that needs the api.
func planServices(t *testing.T, dir string, edits map[string]string) string {
	t.Helper()
	docs := map[string]string{
		"api": "id: api\nunique: true\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}\n",
		"web": "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n",
		"www": `id: www
requires: {API_URL: "{API_URL}"}
rollout: {group: www}
provision: {command: ["true"]}
templates:
  env: {source: "builtin:env", destination: ` + dir + `/www.env, reload: ["true", www]}
`,
		"lb": `id: lb
requires:
  ROUTES: {key: "*_URL", select: all, public: true, region: any}
templates:
  hosts:
    contents: "{{ range routes \"ROUTES\" }}{{ .Name }}:{{ range .Upstreams }} {{ .HostPort }}{{ end }}\n{{ end }}"
    destination: ` + dir + `/lb.conf
    reload: ["true", lb]
`,
	}
	for k, v := range edits {
		docs[k] = v
	}
	return writeServices(t, docs)
}

func register(t *testing.T, reg *registry.Client, specs ...registry.InstanceSpec) {
	t.Helper()
	ctx := context.Background()
	for _, s := range specs {
		o, err := reg.Register(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Close(context.Background()) })
		if err := o.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlanAndImpact runs plan, impact and publish --plan against real
// Consul with live instances on four nodes and a fifth node that hosts the
// load balancer without an instance (known from its status).
func TestPlanAndImpact(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	services := planServices(t, dir, nil)
	if err := os.WriteFile(filepath.Join(services, "datastores.yaml"), []byte("datastores: {API_URL: \"http://api.example\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := patchbay(t, "publish", addr, services); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	register(t, reg,
		registry.InstanceSpec{Federation: "default", Service: "api", Node: "n1", Address: "10.0.0.1", Port: 8001, Region: "us-1"},
		registry.InstanceSpec{Federation: "default", Service: "web", Node: "n1", Address: "10.0.0.1", Port: 8002, Region: "us-1"},
		registry.InstanceSpec{Federation: "default", Service: "web", Node: "n2", Address: "10.0.0.2", Port: 8002, Region: "us-1"},
		registry.InstanceSpec{Federation: "default", Service: "www", Node: "n3", Address: "10.0.0.3", Port: 8003, Region: "us-1"},
		registry.InstanceSpec{Federation: "default", Service: "lb", Node: "n4", Address: "10.0.0.4", Port: 80, Region: "eu-1"},
	)
	if err := reg.PutStatus(context.Background(), registry.Status{Node: "n5", Result: "ok", Details: map[string]string{"lb": "ok (revision 1)"}}); err != nil {
		t.Fatal(err)
	}

	t.Run("no change", func(t *testing.T) {
		code, stdout, stderr := patchbay(t, "plan", addr, services)
		if code != exitOK || !strings.HasPrefix(stdout, "no change") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("node-config: listener.yaml's provision replaces the manifest's", func(t *testing.T) {
		edited := planServices(t, dir, map[string]string{"www": strings.Replace(readFile(t, filepath.Join(services, "www", "patchbay.yaml")), "id: www\n", "id: www\nenvironment: {MODE: blue}\n", 1)})
		nodeCfg := filepath.Join(t.TempDir(), "listener.yaml")
		if err := os.WriteFile(nodeCfg, []byte("node: n3\nregion: us-1\nservices:\n  - service: www\n    provision: {command: [echo, node-www]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{nil, "true"},
			{[]string{"--node-config", nodeCfg}, "echo node-www"},
		} {
			p := planJSON(t, exitChanges, append([]string{"plan", addr, filepath.Join(edited, "www")}, tc.args...)...)
			www := runOf(p, "n3", "www")
			if www == nil || www.Provision == nil || www.Provision.Command != tc.want {
				t.Errorf("%v: www on n3: %+v, want provision %q", tc.args, www, tc.want)
			}
		}
	})
	t.Run("requirement becomes unresolved", func(t *testing.T) {
		edited := planServices(t, dir, map[string]string{"www": strings.Replace(`id: www
requires: {API_URL: "{API_URL}"}
`, "{API_URL}\"", "{API_V2_URL}\"", 1)})
		code, stdout, stderr := patchbay(t, "plan", addr, filepath.Join(edited, "www"))
		if code != exitChanges {
			t.Fatalf("exit %d, want %d; stderr %s", code, exitChanges, stderr)
		}
		t.Log(stdout)
		for _, want := range []string{"changed binding of www", "API_URL [unresolved]", "why: ", "node n3:", "skipped: API_URL unresolved"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plan lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("change empties a load balancer's route", func(t *testing.T) {
		localOnly := planServices(t, dir, map[string]string{"lb": strings.Replace(readFile(t, filepath.Join(services, "lb", "patchbay.yaml")), "region: any", "region: local-only", 1)})
		p := planJSON(t, exitChanges, "plan", addr, filepath.Join(localOnly, "lb"))
		var empty *plan.RouteChange
		for i, r := range p.Routes {
			if r.Service == "lb" && r.Region == "eu-1" && r.Key == "WEB_URL" {
				empty = &p.Routes[i]
			}
		}
		if empty == nil || !empty.Empty || empty.Before != 2 || empty.After != 0 {
			t.Fatalf("routes %+v: want WEB_URL of lb in eu-1 emptied", p.Routes)
		}
		if !hasNode(p, "n4", "lb") || !hasNode(p, "n5", "lb") {
			t.Fatalf("nodes %+v: want n4 (instance) and n5 (status)", p.Nodes)
		}
	})
	t.Run("datastore flag", func(t *testing.T) {
		code, stdout, _ := patchbay(t, "plan", addr, filepath.Join(services, "www"), "--datastore", "API_URL=http://other")
		if code != exitOK || !strings.HasPrefix(stdout, "no change") {
			t.Fatalf("a live provider beats a datastore: exit %d\n%s", code, stdout)
		}
		if code, _, _ := patchbay(t, "plan", addr, services, "--datastore", "lower=x"); code != exitUser {
			t.Fatalf("bad --datastore: exit %d, want 1", code)
		}
	})
	t.Run("impact node", func(t *testing.T) {
		p := planJSON(t, exitChanges, "impact", addr, "node", "n1")
		if len(p.Removed) != 2 || len(p.Failovers) != 1 || p.Failovers[0].Service != "api" {
			t.Fatalf("removed %+v, failovers %+v", p.Removed, p.Failovers)
		}
		var api *plan.VarChange
		for _, c := range p.Bindings {
			for i, v := range c.Vars {
				if c.Service == "www" && v.Var == "API_URL" {
					api = &c.Vars[i]
				}
			}
		}
		// A datastore's value is masked, as resolve masks it (redact).
		if api == nil || api.Kind != plan.KindDatastore || api.After != redact.Masked || !slices.Contains(api.To, "datastore API_URL") {
			t.Fatalf("www API_URL: %+v", api)
		}
		if len(p.Routes) == 0 || p.Routes[0].Key != "WEB_URL" || p.Routes[0].After != 1 || p.Routes[0].Empty {
			t.Fatalf("routes %+v", p.Routes)
		}
		lb := runOf(p, "n4", "lb")
		if lb == nil || len(lb.Templates) != 1 || !strings.Contains(lb.Templates[0].Diff, "-web: 10.0.0.1:8002 10.0.0.2:8002") || !strings.Contains(lb.Templates[0].Diff, "+web: 10.0.0.2:8002") {
			t.Fatalf("lb on n4: %+v", lb)
		}
		if hasNode(p, "n1", "api") {
			t.Fatal("the node gone must not be planned")
		}
	})
	t.Run("impact text", func(t *testing.T) {
		code, stdout, _ := patchbay(t, "impact", addr, "node", "n2")
		t.Log(stdout)
		if code != exitChanges || !strings.Contains(stdout, "route WEB_URL of lb") {
			t.Fatalf("exit %d\n%s", code, stdout)
		}
	})
	t.Run("impact node of a load balancer without instances", func(t *testing.T) {
		p := planJSON(t, exitChanges, "impact", addr, "node", "n5")
		if len(p.Removed) != 0 || len(p.Bindings) != 0 {
			t.Fatalf("removed %+v, bindings %+v: n5 runs no instance", p.Removed, p.Bindings)
		}
		want := []plan.Unhosted{{Node: "n5", Federation: "default", Service: "lb", Files: []string{dir + "/lb.conf"}, OtherNodes: []string{"n4"}}}
		if !reflect.DeepEqual(p.Unhosted, want) {
			t.Fatalf("unhosted %+v, want %+v", p.Unhosted, want)
		}
		code, stdout, stderr := patchbay(t, "impact", addr, "node", "n5")
		if code != exitChanges || stdout != "node n5 stops rendering lb (federation default): "+dir+"/lb.conf; still rendered on n4\n" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("impact of nothing", func(t *testing.T) {
		if code, _, stderr := patchbay(t, "impact", addr, "node", "nowhere"); code != exitUser || !strings.Contains(stderr, "nothing runs on node nowhere") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
	t.Run("publish --plan declined", func(t *testing.T) {
		edited := planServices(t, dir, map[string]string{"web": "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}/declined\"}\n"})
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin := os.Stdin
		os.Stdin = r
		defer func() { os.Stdin = stdin; r.Close() }()
		if _, err := w.WriteString("n\n"); err != nil {
			t.Fatal(err)
		}
		w.Close()
		code, stdout, stderr := patchbay(t, "publish", addr, "--plan", filepath.Join(edited, "web"))
		if code != exitUser || !strings.Contains(stdout, "publish? [y/N]") || !strings.Contains(stderr, "nothing published") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if m, err := reg.Manifest(context.Background(), "default", "web"); err != nil || strings.Contains(m.Provides["WEB_URL"], "declined") {
			t.Fatalf("a declined plan published: %+v, %v", m, err)
		}
	})
	t.Run("publish --plan --yes", func(t *testing.T) {
		edited := planServices(t, dir, map[string]string{"web": "id: web\npublic: true\nprovides: {WEB_URL: \"http://{HOST}:{PORT}/v2\"}\n"})
		code, stdout, stderr := patchbay(t, "publish", addr, "--plan", "--yes", filepath.Join(edited, "web"))
		if code != exitOK || !strings.Contains(stdout, "its provides change") || !strings.Contains(stdout, "published") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		m, err := reg.Manifest(context.Background(), "default", "web")
		if err != nil || m.Provides["WEB_URL"] != "http://{HOST}:{PORT}/v2" {
			t.Fatalf("published manifest %+v, %v", m, err)
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func planJSON(t *testing.T, wantCode int, args ...string) *plan.Plan {
	t.Helper()
	code, stdout, stderr := patchbay(t, append(args, "--json")...)
	if code != wantCode {
		t.Fatalf("%v: exit %d, want %d: %s", args, code, wantCode, stderr)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, stdout)
	}
	return &p
}

func runOf(p *plan.Plan, node, service string) *model.ServiceRun {
	for _, n := range p.Nodes {
		for i, s := range n.Services {
			if n.Node == node && s.Service == service {
				return &n.Services[i]
			}
		}
	}
	return nil
}

func hasNode(p *plan.Plan, node, service string) bool { return runOf(p, node, service) != nil }

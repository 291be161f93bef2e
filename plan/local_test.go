package plan

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/templates"
)

const (
	localAPIDoc = `id: api
local_port: 7001
provides: {API_URL: "http://{HOST}:{PORT}/v1"}`
	localWWWDoc = `id: www
requires:
  API_URL: {key: API_URL, via: local}
provision: {command: [www-restart]}
templates:
  env: {source: "builtin:env", destination: /etc/www/env}`
)

func localFixture(t *testing.T, apiNodes ...string) *binding.Snapshot {
	snap := &binding.Snapshot{Manifests: parse(t, localAPIDoc, localWWWDoc)}
	for _, n := range apiNodes {
		snap.Instances = append(snap.Instances, inst("api", n, 8001, false, "API_URL"))
	}
	snap.Instances = append(snap.Instances, inst("www", "n9", 8080, false, "WWW_URL"))
	return snap
}

// TestImpactLocalRoute: losing a provider of a locally served var changes
// only the consumer nodes' local load balancers; the consumer renders
// nothing and runs nothing.
func TestImpactLocalRoute(t *testing.T) {
	snap := localFixture(t, "n1", "n2")
	p, err := ImpactNode(context.Background(), snap, "n1", WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	if v := findVar(p, "www", "API_URL"); v == nil || v.Kind != KindLocal || v.Before != v.After {
		t.Fatalf("www API_URL: %+v; want kind local, value kept", v)
	}
	if findRun(p, "n9", "www") != nil {
		t.Fatalf("nodes %+v: www's run does nothing and must not be listed", p.Nodes)
	}
	if len(p.Local) != 1 || p.Local[0].Address != "127.0.0.1:7001" || !slices.Equal(p.Local[0].Nodes, []string{"n9"}) ||
		!slices.Equal(p.Local[0].Lost, []string{"api@n1:8001 API_URL"}) {
		t.Fatalf("local %+v", p.Local)
	}
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "local route API_URL of www at 127.0.0.1:7001 (http): servers api@n1:8001 API_URL, api@n2:8001 API_URL → api@n2:8001 API_URL; www keeps its files and is not reloaded; only the local load balancers of n9 change") {
		t.Errorf("text:\n%s", b.String())
	}
}

// TestPlanLocalPortNotes: a local_port claimed twice, or where an
// instance on a consumer's node listens, is a note of the plan.
func TestPlanLocalPortNotes(t *testing.T) {
	before := localFixture(t, "n1")
	after := localFixture(t, "n1")
	after.Manifests = append(after.Manifests, parse(t, "id: search\nlocal_port: 7001\nprovides: {S_URL: \"http://{HOST}:{PORT}\"}")...)
	after.Instances = append(after.Instances, inst("search", "n9", 7001, false, "S_URL"))
	p := compute(t, before, after)
	notes := strings.Join(p.Notes, "\n")
	for _, want := range []string{
		"services api and search (federation default) both claim local_port 7001",
		"node n9: API_URL of www is served locally at 127.0.0.1:7001, where search@n9:7001 listens on that node",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes:\n%s\nwant %q", notes, want)
		}
	}
}

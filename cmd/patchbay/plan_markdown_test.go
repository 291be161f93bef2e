package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// TestPlanMarkdown: plan --format markdown against a real Consul is the
// pull-request comment examples/ci posts (its layout is plan's golden test).
func TestPlanMarkdown(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	services := planServices(t, dir, nil)
	if code, _, stderr := patchbay(t, "publish", addr, services); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	register(t, reg,
		registry.InstanceSpec{Federation: "default", Service: "web", Node: "n1", Address: "10.0.0.1", Port: 8002, Region: "us-1"},
		registry.InstanceSpec{Federation: "default", Service: "lb", Node: "n4", Address: "10.0.0.4", Port: 80, Region: "eu-1"},
	)
	localOnly := planServices(t, dir, map[string]string{"lb": strings.Replace(readFile(t, filepath.Join(services, "lb", "patchbay.yaml")), "region: any", "region: local-only", 1)})

	code, stdout, stderr := patchbay(t, "plan", addr, filepath.Join(localOnly, "lb"), "--format", "markdown")
	if code != exitChanges {
		t.Fatalf("exit %d, want %d: %s", code, exitChanges, stderr)
	}
	for _, want := range []string{"### patchbay plan\n", "**2 routes are left without upstreams**", "- **route `WEB_URL` of lb in region eu-1", "<details><summary><b>n4</b>", "| lb | eu-1 | changed (manifest) | `ROUTES` |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the comment lacks %q:\n%s", want, stdout)
		}
	}
	if code, stdout, _ := patchbay(t, "plan", addr, services, "--format", "markdown"); code != exitOK || !strings.Contains(stdout, "**No change**") {
		t.Errorf("no change: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := patchbay(t, "plan", addr, services, "--format", "markdown", "--json"); code != exitUser || !strings.Contains(stderr, "disagree") {
		t.Errorf("--json with --format markdown: exit %d: %s", code, stderr)
	}
}

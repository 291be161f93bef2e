package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// A node's status has a lifecycle: a listener that stops cleanly deletes
// its record, a killed one is shown as stale with the time of its last
// record, and --prune forgets it.
func TestStatusLifecycle(t *testing.T) {
	c := startListenCluster(t)
	c.publish(t, map[string]string{"life-a": envManifest("life-a", "1")})
	flags := []string{"--consul-addr=" + c.consul.Addr, "--nats-url=" + c.nats.URL}
	start := func(name string) *listenDaemon {
		n := newListenNode(t, c, name, true)
		n.write(t, fmt.Sprintf("  - service: life-a\n    port: %d\n", freePort(t)), "")
		d := startListen(t, "--config", n.path)
		testcluster.Eventually(t, 20*time.Second, name+"'s status recorded", func() bool { return recorded(t, c.reg, name) != nil })
		return d
	}
	status := func() statusReport {
		t.Helper()
		code, stdout, stderr := patchbay(t, append([]string{"status", "--json"}, flags...)...)
		var r statusReport
		if err := json.Unmarshal([]byte(stdout), &r); code != 0 || err != nil {
			t.Fatalf("status: exit %d, %v\n%s%s", code, err, stdout, stderr)
		}
		return r
	}
	live, killed := start("life-1"), start("life-2")

	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.wait(t, 10*time.Second)
	r := status()
	if s := nodeIn(r, "life-1"); s == nil || !s.Live || s.Stale {
		t.Errorf("life-1 runs: %+v, want live", s)
	}
	if s := nodeIn(r, "life-2"); s == nil || !s.Stale || s.Live {
		t.Errorf("life-2 was killed: %+v, want stale", s)
	}
	last := recorded(t, c.reg, "life-2").At
	_, stdout, _ := patchbay(t, append([]string{"status"}, flags...)...)
	if !hasLine(stdout, "life-2", "stale", "no answer over NATS; last recorded ok at "+last.Format(time.RFC3339)) || !hasLine(stdout, "life-1", "ok") {
		t.Errorf("table:\n%s", stdout)
	}

	code, _, stderr := patchbay(t, append([]string{"status", "--prune"}, flags...)...)
	if code != 0 || !strings.Contains(stderr, "pruned life-2") || strings.Contains(stderr, "pruned life-1") {
		t.Fatalf("--prune: exit %d\n%s", code, stderr)
	}
	if recorded(t, c.reg, "life-2") != nil || recorded(t, c.reg, "life-1") == nil {
		t.Errorf("after --prune: life-2 %+v (want gone), life-1 %+v (want kept)", recorded(t, c.reg, "life-2"), recorded(t, c.reg, "life-1"))
	}
	if code, _, stderr := patchbay(t, "status", "--prune", "--live-wait=0", flags[0]); code != 1 || !strings.Contains(stderr, "--prune needs --live-wait above 0") {
		t.Errorf("--prune --live-wait=0: exit %d\n%s", code, stderr)
	}

	live.signal(t, syscall.SIGTERM)
	if code := live.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if s := recorded(t, c.reg, "life-1"); s != nil {
		t.Errorf("life-1 stopped cleanly but its record stays: %+v", s)
	}
	if r := status(); len(r.Nodes) != 0 {
		t.Errorf("nodes after every listener stopped: %+v", r.Nodes)
	}
}

// recorded is a node's status record in Consul, or nil.
func recorded(t *testing.T, reg *registry.Client, node string) *registry.Status {
	t.Helper()
	statuses, _, err := reg.Statuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		if s.Node == node {
			return &s
		}
	}
	return nil
}

func nodeIn(r statusReport, node string) *registry.Status {
	for _, s := range r.Nodes {
		if s.Node == node {
			return &s
		}
	}
	return nil
}

package tracking

import (
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// TestPlace places nodes from their answers and Consul's records.
func TestPlace(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rev := func(n uint64, state, reason string, finished time.Duration) events.AppliedRevision {
		return events.AppliedRevision{Revision: n, State: state, Reason: reason, Written: t0, Received: t0, Finished: t0.Add(finished)}
	}
	svc := func(name, region string, revs ...events.AppliedRevision) events.ServiceChanges {
		return events.ServiceChanges{Service: name, Region: region, Revisions: revs}
	}
	targets := []Target{{Service: "app", Revision: 5}}
	answers := map[string]events.NodeChanges{
		"n-later":   {Node: "n-later", Services: []events.ServiceChanges{svc("app", "", rev(6, events.RevisionApplied, "", 3*time.Second))}},
		"n-exact":   {Node: "n-exact", Services: []events.ServiceChanges{svc("app", "", rev(5, events.RevisionApplied, "", time.Second), rev(4, events.RevisionApplied, "", 0))}},
		"n-old":     {Node: "n-old", Services: []events.ServiceChanges{svc("app", "", rev(4, events.RevisionApplied, "", 0))}},
		"n-paused":  {Node: "n-paused", Paused: true, Services: []events.ServiceChanges{svc("app", "", rev(5, events.RevisionReceived, "", 0))}},
		"n-running": {Node: "n-running", Running: true, Services: []events.ServiceChanges{svc("app", "")}},
		"n-failed":  {Node: "n-failed", Services: []events.ServiceChanges{svc("app", "", rev(5, events.RevisionFailed, "template env: check failed: postgres://u:pw@db/x", 0))}},
		"n-halted":  {Node: "n-halted", Services: []events.ServiceChanges{svc("app", "", rev(5, events.RevisionHalted, "group www", 0))}},
		"n-region":  {Node: "n-region", Services: []events.ServiceChanges{svc("app", "eu", rev(1, events.RevisionReceived, "", 0))}},
		"n-other":   {Node: "n-other", Services: []events.ServiceChanges{svc("db", "", rev(9, events.RevisionReceived, "", 0))}},
	}
	recorded := []registry.Status{
		{Node: "n-exact", Details: map[string]string{"app": "ok"}},
		{Node: "n-killed", Result: "ok", At: t0, Details: map[string]string{"app": "ok (revision 4)"}},
		{Node: "n-killed-db", Details: map[string]string{"db": "ok"}},
		{Node: "n-other-fed", Federation: "pci", Details: map[string]string{"app": "ok"}},
	}
	v := Place(targets, Inputs{Federation: "default", Answers: answers, Recorded: recorded})
	want := map[string]string{
		"n-later": Applied, "n-exact": Applied, "n-old": Pending, "n-paused": Paused, "n-running": Running,
		"n-failed": Failed, "n-halted": Halted, "n-killed": Stale,
	}
	if len(v.Nodes) != len(want) {
		t.Errorf("%d nodes, want %d: %+v", len(v.Nodes), len(want), v.Nodes)
	}
	for _, n := range v.Nodes {
		if want[n.Node] != n.State {
			t.Errorf("%s: %s, want %s (%q)", n.Node, n.State, want[n.Node], n.Reason)
		}
	}
	for _, n := range v.Nodes {
		switch n.Node {
		case "n-exact":
			if n.Latency != time.Second {
				t.Errorf("n-exact: latency %s, want 1s from the binding's write", n.Latency)
			}
		case "n-failed":
			if !strings.Contains(n.Reason, "check failed") || strings.Contains(n.Reason, "pw@") {
				t.Errorf("n-failed: reason %q: want the check, without the URL's password", n.Reason)
			}
		}
	}
	if v.Done() {
		t.Error("done with nodes pending, paused and stale")
	}
	if got := v.Summary(); got != "2/8 applied, 1 pending, 1 running, 1 paused, 1 stale, 1 halted, 1 failed" {
		t.Errorf("summary %q", got)
	}

	// A group resumed since the node halted the revision: pending again.
	halted := answers["n-halted"]
	halted.Services[0].Revisions[0].Group = "www"
	one := map[string]events.NodeChanges{"n-halted": halted}
	for _, tc := range []struct {
		halts map[string]registry.Halt
		want  string
	}{
		{nil, Halted}, // unknown: as the node said
		{map[string]registry.Halt{"default/www": {Node: "n-halted"}}, Halted},
		{map[string]registry.Halt{"default/other": {}}, Pending},
	} {
		if got := Place(targets, Inputs{Federation: "default", Answers: one, Halts: tc.halts}); got.Nodes[0].State != tc.want {
			t.Errorf("halts %v: %s, want %s", tc.halts, got.Nodes[0].State, tc.want)
		}
	}

	// Once the others are final, the wait is over.
	final := Place(targets, Inputs{Federation: "default", Answers: map[string]events.NodeChanges{"n-failed": answers["n-failed"], "n-exact": answers["n-exact"]}, Since: t0})
	if !final.Done() {
		t.Errorf("not done with every node applied or failed: %+v", final.Nodes)
	}
}

func TestLatencies(t *testing.T) {
	var nodes []Node
	for i := 1; i <= 100; i++ {
		nodes = append(nodes, Node{Node: "n" + string(rune('0'+i%10)) + string(rune('a'+i/10)), State: Applied, Latency: time.Duration(i) * time.Millisecond})
	}
	nodes = append(nodes, Node{Node: "pending", State: Pending})
	l := Latencies(nodes)
	if l == nil || l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond || l.Slowest != nodes[99].Node {
		t.Errorf("latencies %+v", l)
	}
	if Latencies(nodes[100:]) != nil {
		t.Error("latencies of no applied node")
	}
}

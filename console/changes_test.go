package console

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/registry"
)

// TestRecentChanges groups revisions by the resolver pass that wrote them
// (their modify index), newest first, bounded, and places each node.
func TestRecentChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	applied := func(rev, index uint64, after time.Duration) events.AppliedRevision {
		return events.AppliedRevision{Revision: rev, Index: index, State: events.RevisionApplied, Written: t0, Received: t0, Finished: t0.Add(after)}
	}
	answers := map[string]events.NodeChanges{
		"n1": {Node: "n1", Federation: "default", Services: []events.ServiceChanges{
			{Service: "www", Revisions: []events.AppliedRevision{applied(8, 40, time.Second), applied(7, 30, 0)}},
			{Service: "lb", Revisions: []events.AppliedRevision{applied(3, 40, 2*time.Second)}},
		}},
		"n2": {Node: "n2", Federation: "default", Paused: true, Services: []events.ServiceChanges{
			{Service: "www", Revisions: []events.AppliedRevision{applied(7, 30, 0)}},
		}},
	}
	stored := []registry.StoredBinding{storedAt(t, "api", 5, 50), storedAt(t, "www", 8, 40)}
	got := recentChanges(answers, stored, nil, nil)
	if len(got) != 3 || got[0].Index != 50 || got[1].Index != 40 || got[2].Index != 30 {
		t.Fatalf("changes %+v, want indexes 50, 40, 30", got)
	}
	c := got[1]
	want := []tracking.Target{{Service: "lb", Revision: 3}, {Service: "www", Revision: 8}}
	if fmt.Sprint(c.Revisions) != fmt.Sprint(want) || !c.Written.Equal(t0) {
		t.Errorf("change 40: revisions %v written %s, want %v", c.Revisions, c.Written, want)
	}
	if c.Summary != "1/2 applied, 1 paused" || c.Latency == nil || c.Latency.Slowest != "n1" || c.Latency.Max != 2*time.Second {
		t.Errorf("change 40: %q latency %+v", c.Summary, c.Latency)
	}
	if got[0].Summary != "0/0 applied" || got[2].Summary != "2/2 applied" {
		t.Errorf("summaries %q, %q", got[0].Summary, got[2].Summary)
	}

	var many []registry.StoredBinding
	for i := range 3 * maxChanges {
		many = append(many, storedAt(t, fmt.Sprint("s", i), 1, uint64(100+i)))
	}
	if got := recentChanges(nil, many, nil, nil); len(got) != maxChanges || got[0].Index != uint64(100+3*maxChanges-1) {
		t.Errorf("%d changes, first %d: want the newest %d", len(got), got[0].Index, maxChanges)
	}
}

func storedAt(t *testing.T, service string, rev, index uint64) registry.StoredBinding {
	t.Helper()
	data, err := json.Marshal(binding.Binding{Federation: "default", Service: service, Revision: rev, Vars: map[string]binding.Var{}})
	if err != nil {
		t.Fatal(err)
	}
	return registry.StoredBinding{Federation: "default", Service: service, Value: data, ModifyIndex: index, Key: "patchbay/bindings/default/" + service + "/_"}
}

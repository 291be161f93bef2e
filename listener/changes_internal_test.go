package listener

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/events"
)

// TestChangesTrack follows revisions from their events to the runs that
// applied them.
func TestChangesTrack(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := newChanges()
	ev := func(svc, region string, rev uint64) events.BindingsChanged {
		return events.BindingsChanged{Federation: "default", Service: svc, Region: region, Revision: rev, Written: t0}
	}
	c.received(ev("app", "", 3), "eu", t0.Add(10*time.Millisecond))
	c.received(ev("app", "", 4), "eu", t0.Add(20*time.Millisecond))
	c.received(ev("app", "", 4), "eu", t0.Add(time.Hour)) // a duplicate keeps the first receipt
	c.received(ev("app", "us", 9), "eu", t0)              // another region's: not this node's
	c.received(ev("app", "", 0), "eu", t0)                // a delete

	run := &RunReport{Started: t0.Add(30 * time.Millisecond), Services: []ServiceRun{{Service: "app", Revision: 4, Result: ResultOK,
		Templates: []TemplateRun{{Name: "env", Changed: true}}, Provision: &CommandResult{Ran: true, Duration: time.Second}}}}
	done := c.ran(run, map[string]seenInputs{"app": {bindingIndex: 77}}, t0.Add(time.Second))
	if len(done) != 2 {
		t.Fatalf("%d revisions done, want 2 (4 and the 3 it includes): %+v", len(done), done)
	}
	got := c.snapshot([]string{"app", "db"}, map[string]string{})
	if len(got) != 2 || got[1].Service != "db" || len(got[1].Revisions) != 0 {
		t.Fatalf("snapshot %+v", got)
	}
	revs := got[0].Revisions
	if len(revs) != 2 || revs[0].Revision != 4 || revs[1].Revision != 3 {
		t.Fatalf("revisions %+v, want 4 then 3", revs)
	}
	r := revs[0]
	if r.State != events.RevisionApplied || !r.Received.Equal(t0.Add(20*time.Millisecond)) || !r.Finished.Equal(t0.Add(time.Second)) || !r.Written.Equal(t0) {
		t.Errorf("revision 4: %+v", r)
	}
	if len(r.Steps) != 2 || r.Steps[0] != (events.Step{Name: "template env", Result: "installed"}) || r.Steps[1].Name != "provision" {
		t.Errorf("steps %+v", r.Steps)
	}

	// A later run that fails on a revision read from Consul.
	failed := &RunReport{Started: t0.Add(2 * time.Second), Services: []ServiceRun{{Service: "app", Revision: 5, Result: ResultFailed, Reason: "check failed"}}}
	c.ran(failed, map[string]seenInputs{"app": {bindingIndex: 77}}, t0.Add(3*time.Second))
	r = c.snapshot([]string{"app"}, nil)[0].Revisions[0]
	if r.Revision != 5 || r.Index != 77 || r.State != events.RevisionFailed || r.Reason != "check failed" || !r.Received.Equal(t0.Add(2*time.Second)) {
		t.Errorf("revision 5: %+v", r)
	}
	if prev := c.snapshot([]string{"app"}, nil)[0].Revisions[1]; prev.State != events.RevisionApplied {
		t.Errorf("revision 4 changed by a later run: %+v", prev)
	}

	c.forget([]string{"db"})
	if revs := c.snapshot([]string{"app"}, nil)[0].Revisions; len(revs) != 0 {
		t.Errorf("a service no longer hosted kept %d revisions", len(revs))
	}
}

// TestChangesBounded: a flood of revisions keeps the newest few.
func TestChangesBounded(t *testing.T) {
	c := newChanges()
	for rev := uint64(1); rev <= 1000; rev++ {
		c.received(events.BindingsChanged{Service: "app", Revision: rev}, "", time.Now())
	}
	for i := 0; i < 100; i++ { // regions the node cannot apply are not kept
		c.received(events.BindingsChanged{Service: "app", Region: fmt.Sprint("r", i), Revision: 1}, "", time.Now())
	}
	revs := c.snapshot([]string{"app"}, nil)[0].Revisions
	if len(revs) != events.MaxTrackedRevisions || revs[0].Revision != 1000 || revs[len(revs)-1].Revision != 1000-events.MaxTrackedRevisions+1 {
		t.Errorf("kept %d revisions, %d to %d", len(revs), revs[0].Revision, revs[len(revs)-1].Revision)
	}
	if len(c.revs) != 1 {
		t.Errorf("%d keys tracked, want 1", len(c.revs))
	}
}

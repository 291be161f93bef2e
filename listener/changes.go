package listener

import (
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
)

// changes remembers, per hosted service and binding region, the last
// revisions the node received and what became of each: what `patchbay
// wait` and the console's change view ask over NATS (events.ChangesSubject).
// It is bounded: events.MaxTrackedRevisions per service and region, and
// only the regions a node can apply (its own and the region-less one), so
// a flood of events cannot grow it.
type changes struct {
	mu   sync.Mutex
	revs map[changeKey][]events.AppliedRevision // newest first
}

type changeKey struct{ service, region string }

func newChanges() *changes { return &changes{revs: map[changeKey][]events.AppliedRevision{}} }

// received notes an event's revision the first time it is announced.
func (c *changes) received(e events.BindingsChanged, nodeRegion string, now time.Time) {
	if e.Revision == 0 || (e.Region != "" && e.Region != nodeRegion) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := changeKey{e.Service, e.Region}
	if i := c.find(k, e.Revision); i >= 0 {
		return // a duplicate, or one the run already read from Consul
	}
	c.add(k, events.AppliedRevision{Revision: e.Revision, State: events.RevisionReceived, Index: e.ModifyIndex, Written: e.Written, Received: now})
}

// ran notes a finished run: each service's revision ends in the run's
// result for it, and older revisions still marked received end with it,
// since a run applies the newest binding, which includes them. It returns
// the revisions that reached a final state in this run, for the metrics.
func (c *changes) ran(run *RunReport, seen map[string]seenInputs, now time.Time) []events.AppliedRevision {
	c.mu.Lock()
	defer c.mu.Unlock()
	var done []events.AppliedRevision
	for _, s := range run.Services {
		if s.Revision == 0 {
			continue // no binding yet: nothing to track
		}
		in := seen[s.Service]
		k := changeKey{s.Service, in.region}
		if c.find(k, s.Revision) < 0 {
			c.add(k, events.AppliedRevision{Revision: s.Revision, Index: in.bindingIndex, Received: run.Started})
		}
		state, steps := revisionState(s.Result), stepsOf(s)
		for i, r := range c.revs[k] {
			if r.Revision > s.Revision || (r.Revision < s.Revision && r.State != events.RevisionReceived) {
				continue
			}
			if r.State == events.RevisionApplied && r.Revision == s.Revision {
				continue // applied before: this run found nothing new
			}
			r.State, r.Reason, r.Steps, r.Group = state, s.Reason, steps, ""
			if state == events.RevisionHalted {
				r.Group = in.halted
			}
			r.Started, r.Finished = run.Started, now
			c.revs[k][i] = r
			done = append(done, r)
		}
	}
	return done
}

// find is the index of rev among k's revisions, -1 if absent.
func (c *changes) find(k changeKey, rev uint64) int {
	return slices.IndexFunc(c.revs[k], func(r events.AppliedRevision) bool { return r.Revision == rev })
}

// add inserts r by revision, newest first, keeping the newest
// MaxTrackedRevisions.
func (c *changes) add(k changeKey, r events.AppliedRevision) {
	revs := c.revs[k]
	i, _ := slices.BinarySearchFunc(revs, r.Revision, func(x events.AppliedRevision, rev uint64) int {
		switch {
		case x.Revision > rev:
			return -1
		case x.Revision < rev:
			return 1
		}
		return 0
	})
	revs = slices.Insert(revs, i, r)
	c.revs[k] = revs[:min(len(revs), events.MaxTrackedRevisions)]
}

// forget drops the services the node no longer hosts.
func (c *changes) forget(hosted []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.revs {
		if !slices.Contains(hosted, k.service) {
			delete(c.revs, k)
		}
	}
}

// snapshot is what the node reports: for each hosted service, the
// revisions of the binding region it applies (regions[service]).
func (c *changes) snapshot(hosted []string, regions map[string]string) []events.ServiceChanges {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]events.ServiceChanges, 0, len(hosted))
	for _, svc := range hosted {
		k := changeKey{svc, regions[svc]}
		revs := slices.Clone(c.revs[k])
		for i := range revs {
			revs[i].Steps = slices.Clone(revs[i].Steps)
		}
		out = append(out, events.ServiceChanges{Service: svc, Region: k.region, Revisions: revs})
	}
	return out
}

func revisionState(result string) string {
	switch result {
	case ResultOK:
		return events.RevisionApplied
	case ResultSkipped:
		return events.RevisionSkipped
	case ResultHalted:
		return events.RevisionHalted
	default:
		return events.RevisionFailed
	}
}

// stepsOf lists what a run did for a service. It carries results, never
// a command's output nor an error's text beyond what status shows.
func stepsOf(s ServiceRun) []events.Step {
	var steps []events.Step
	for _, t := range s.Templates {
		result := "unchanged"
		switch {
		case t.Error != "":
			result = "failed"
		case t.Changed:
			result = "installed"
		}
		steps = append(steps, events.Step{Name: "template " + t.Name, Result: result})
	}
	if p := s.Provision; p != nil && p.Ran {
		result := "ok"
		if p.Error != "" {
			result = "failed"
		}
		steps = append(steps, events.Step{Name: "provision", Result: result, Duration: p.Duration})
	}
	for _, t := range s.Tests {
		result := "passed"
		if !t.Passed {
			result = "failed"
		}
		steps = append(steps, events.Step{Name: "test " + t.Name, Result: result, Duration: t.Duration})
	}
	return steps
}

// regionsSeen is the binding region each hosted service's last run used.
func (l *Listener) regionsSeen() map[string]string {
	regions := map[string]string{}
	for svc, s := range l.inputsSeen() {
		regions[svc] = s.region
	}
	return regions
}

func (l *Listener) inputsSeen() map[string]seenInputs {
	if seen := l.seen.Load(); seen != nil {
		return *seen
	}
	return nil
}

// trackRun records a finished run in the change tracker and observes the
// change-to-file latency of every revision it applied.
func (l *Listener) trackRun(run *RunReport, now time.Time) {
	cfg := l.cfg.Load()
	l.changes.forget(cfg.serviceNames())
	for _, r := range l.changes.ran(run, l.inputsSeen(), now) {
		if r.State == events.RevisionApplied {
			l.metrics.ChangeApplied(r.Written, r.Received, now)
		}
	}
}

// onChangesRequest answers `patchbay wait` and the console with the
// revisions the node received and applied.
func (l *Listener) onChangesRequest(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	cfg := l.cfg.Load()
	answer := events.NodeChanges{
		Node: cfg.Node, Federation: l.fed, Region: cfg.Region, At: time.Now(),
		Services: l.changes.snapshot(cfg.serviceNames(), l.regionsSeen()),
	}
	if q := l.queueState.Load(); q != nil {
		answer.Paused, answer.Pending, answer.Running = q.Paused, q.Pending, q.Running
	}
	if err := events.RespondChanges(m, answer); err != nil {
		l.log.Debug("cannot answer a changes request", "err", err)
	}
}

package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/registry"
)

// waitTarget is one revision to wait for: SERVICE[/REGION]@REVISION.
type waitTarget struct {
	Service  string `json:"service"`
	Region   string `json:"region"`
	Revision uint64 `json:"revision"`
}

func (t waitTarget) String() string {
	if t.Region == "" {
		return t.Service + "@" + strconv.FormatUint(t.Revision, 10)
	}
	return t.Service + "/" + t.Region + "@" + strconv.FormatUint(t.Revision, 10)
}

// parseWaitTarget reads SERVICE@REVISION or SERVICE/REGION@REVISION.
func parseWaitTarget(s string) (waitTarget, error) {
	name, rev, ok := strings.Cut(s, "@")
	n, err := strconv.ParseUint(rev, 10, 64)
	if !ok || err != nil || n == 0 || name == "" {
		return waitTarget{}, usageErrorf("%q: want SERVICE@REVISION or SERVICE/REGION@REVISION, a revision above 0 (publish --json and datastore set --json print them)", s)
	}
	svc, region, _ := strings.Cut(name, "/")
	if svc == "" {
		return waitTarget{}, usageErrorf("%q: the service is missing before /", s)
	}
	return waitTarget{Service: svc, Region: region, Revision: n}, nil
}

// Node states of a wait, from best to worst: a node's state is its worst
// over the targets it hosts.
const (
	nodeApplied = "applied"
	nodePending = "pending" // answered, not applied yet
	nodeRunning = "running" // a provision run is under way
	nodePaused  = "paused"  // pause holds the change until resume
	nodeStale   = "stale"   // recorded as hosting the service, not answering
	nodeHalted  = "halted"  // its rollout group is halted: staged, not applied
	nodeSkipped = "skipped" // unresolved requirements: last good files kept
	nodeFailed  = "failed"
)

var nodeRank = map[string]int{nodeApplied: 0, nodePending: 1, nodeRunning: 2, nodePaused: 3, nodeStale: 4, nodeHalted: 5, nodeSkipped: 6, nodeFailed: 7}

// final reports whether a node's state will not change by waiting longer
// without someone acting: applied, or failed in one of its ways.
func final(state string) bool {
	return state == nodeApplied || state == nodeFailed || state == nodeHalted || state == nodeSkipped
}

// nodeProgress is one node's place in a wait.
type nodeProgress struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Applied is when the node finished applying the last of its targets
	// (its clock); Latency is from the change's start (publish) to then.
	Applied time.Time     `json:"applied,omitzero"`
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// waitView is the state of a wait after one round of answers.
type waitView struct {
	Nodes  []nodeProgress `json:"nodes"`
	Counts map[string]int `json:"counts"`
}

// done reports whether every node is in a final state.
func (v waitView) done() bool {
	return !slices.ContainsFunc(v.Nodes, func(n nodeProgress) bool { return !final(n.State) })
}

// summary is "3/5 applied, 1 paused, 1 stale".
func (v waitView) summary() string {
	parts := []string{fmt.Sprintf("%d/%d applied", v.Counts[nodeApplied], len(v.Nodes))}
	for _, s := range slices.SortedFunc(maps.Keys(v.Counts), func(a, b string) int { return cmp.Compare(nodeRank[a], nodeRank[b]) }) {
		if s != nodeApplied {
			parts = append(parts, fmt.Sprintf("%d %s", v.Counts[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// viewOf places every node that hosts a target: the live ones by their
// answers, and the ones Consul recorded as hosting a target's service that
// did not answer as stale (killed, host down, cut off). Reasons pass the
// redaction policy: listeners never put values in them, and this makes sure.
func viewOf(targets []waitTarget, fed string, answers map[string]events.NodeChanges, recorded []registry.Status, since time.Time) waitView {
	v := waitView{Counts: map[string]int{}}
	for _, node := range slices.Sorted(maps.Keys(answers)) {
		if p, ok := nodeOf(targets, answers[node], since); ok {
			v.Nodes = append(v.Nodes, p)
		}
	}
	for _, s := range recorded {
		if _, live := answers[s.Node]; live || (s.Federation != "" && s.Federation != fed) {
			continue
		}
		if slices.ContainsFunc(targets, func(t waitTarget) bool { _, ok := s.Details[t.Service]; return ok }) {
			v.Nodes = append(v.Nodes, nodeProgress{Node: s.Node, State: nodeStale,
				Reason: fmt.Sprintf("no answer over NATS; last recorded %s at %s", s.Result, s.At.Format(time.RFC3339))})
		}
	}
	slices.SortFunc(v.Nodes, func(a, b nodeProgress) int { return cmp.Compare(a.Node, b.Node) })
	for i := range v.Nodes {
		v.Nodes[i].Reason = redactReason(v.Nodes[i].Reason)
		v.Counts[v.Nodes[i].State]++
	}
	return v
}

// nodeOf is a live node's progress over the targets it hosts; false when
// it hosts none (another service, or another region's binding).
func nodeOf(targets []waitTarget, c events.NodeChanges, since time.Time) (nodeProgress, bool) {
	p := nodeProgress{Node: c.Node, State: nodeApplied}
	hosts, latency := false, time.Duration(0)
	for _, t := range targets {
		i := slices.IndexFunc(c.Services, func(s events.ServiceChanges) bool { return s.Service == t.Service && s.Region == t.Region })
		if i < 0 {
			continue
		}
		hosts = true
		state, reason, r := targetState(t, c.Services[i].Revisions, c)
		if nodeRank[state] > nodeRank[p.State] {
			p.State, p.Reason = state, reason
		}
		if r.Finished.After(p.Applied) {
			p.Applied = r.Finished
		}
		latency = max(latency, changeLatency(r, since))
	}
	if p.State != nodeApplied {
		p.Applied = time.Time{}
	} else {
		p.Latency = latency
	}
	return p, hosts
}

// changeLatency is the time from the change to the node's files: from
// since (the publish) when known, else from the resolver's write of the
// binding, else from the node's receipt of it.
func changeLatency(r events.AppliedRevision, since time.Time) time.Duration {
	start := cmp.Or(since, r.Written, r.Received)
	if start.IsZero() || r.Finished.IsZero() {
		return 0
	}
	return max(r.Finished.Sub(start), 0)
}

// targetState is where one target stands on a node: applied once a
// revision at or above it applied (a later binding includes the change),
// else the outcome of the newest run that read one, else the queue's.
func targetState(t waitTarget, revs []events.AppliedRevision, c events.NodeChanges) (state, reason string, applied events.AppliedRevision) {
	// The oldest applied revision at or above the target: the one that
	// brought the change.
	for i := len(revs) - 1; i >= 0; i-- {
		if r := revs[i]; r.Revision >= t.Revision && r.State == events.RevisionApplied {
			return nodeApplied, "", r
		}
	}
	for _, r := range revs {
		if r.Revision < t.Revision {
			break
		}
		switch r.State {
		case events.RevisionFailed:
			return nodeFailed, fmt.Sprintf("%s revision %d: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		case events.RevisionHalted:
			return nodeHalted, fmt.Sprintf("%s revision %d: rollout halted: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		case events.RevisionSkipped:
			return nodeSkipped, fmt.Sprintf("%s revision %d: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		}
	}
	switch {
	case c.Paused:
		return nodePaused, "paused: patchbay resume applies it", events.AppliedRevision{}
	case c.Running:
		return nodeRunning, "", events.AppliedRevision{}
	}
	return nodePending, "", events.AppliedRevision{}
}

// redactReason hides the password of every URL in a reason, word by word:
// a listener's reasons carry no values, and this holds even if one did.
func redactReason(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = redact.URLPasswords(w)
	}
	return strings.Join(words, " ")
}

// Package tracking places nodes along a change: given the binding
// revisions a change produced and the listeners' answers on
// events.ChangesSubject (with Consul's recorded statuses for the nodes
// that do not answer), it says for each node whether it applied the
// change, is pending, running, paused, stale, halted, skipped or failed,
// and how long the change took to reach its files. Pure: no I/O, no
// clock. `patchbay wait` and the console's change view share it.
package tracking

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

// Target is one binding revision of a change: SERVICE[/REGION]@REVISION.
type Target struct {
	Service  string `json:"service"`
	Region   string `json:"region"`
	Revision uint64 `json:"revision"`
}

func (t Target) String() string {
	return t.Name() + "@" + strconv.FormatUint(t.Revision, 10)
}

// Name is SERVICE or SERVICE/REGION.
func (t Target) Name() string {
	if t.Region == "" {
		return t.Service
	}
	return t.Service + "/" + t.Region
}

// Node states, from best to worst: a node's state is its worst
// over the targets it hosts.
const (
	Applied = "applied"
	Pending = "pending" // answered, not applied yet
	Running = "running" // a provision run is under way
	Paused  = "paused"  // pause holds the change until resume
	Stale   = "stale"   // recorded as hosting the service, not answering
	Halted  = "halted"  // its rollout group is halted: staged, not applied
	Skipped = "skipped" // unresolved requirements: last good files kept
	Failed  = "failed"
)

var rank = map[string]int{Applied: 0, Pending: 1, Running: 2, Paused: 3, Stale: 4, Halted: 5, Skipped: 6, Failed: 7}

// Final reports whether a node's state will not change by waiting longer
// without someone acting: applied, or failed in one of its ways.
func Final(state string) bool {
	return state == Applied || state == Failed || state == Halted || state == Skipped
}

// Node is one node's place in a wait.
type Node struct {
	Node   string `json:"node"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Applied is when the node finished applying the last of its targets
	// (its clock); Latency is from the change's start (publish) to then.
	Applied time.Time     `json:"applied,omitzero"`
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// View is the state of a wait after one round of answers.
type View struct {
	Nodes  []Node         `json:"nodes"`
	Counts map[string]int `json:"counts"`
}

// Done reports whether every node is in a final state.
func (v View) Done() bool {
	return !slices.ContainsFunc(v.Nodes, func(n Node) bool { return !Final(n.State) })
}

// Summary is "3/5 applied, 1 paused, 1 stale".
func (v View) Summary() string {
	parts := []string{fmt.Sprintf("%d/%d applied", v.Counts[Applied], len(v.Nodes))}
	for _, s := range slices.SortedFunc(maps.Keys(v.Counts), func(a, b string) int { return cmp.Compare(rank[a], rank[b]) }) {
		if s != Applied {
			parts = append(parts, fmt.Sprintf("%d %s", v.Counts[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// Inputs is what Place reads.
type Inputs struct {
	Federation string
	// Answers are the live listeners' answers on events.ChangesSubject.
	Answers map[string]events.NodeChanges
	// Recorded are the statuses Consul holds: a node that hosts a target's
	// service and does not answer is stale.
	Recorded []registry.Status
	// Halts are the halted rollout groups by "federation/group"
	// (registry.Halts); nil when unknown. A node that reported a revision
	// halted by a group resumed since is pending again.
	Halts map[string]registry.Halt
	// Since is when the change was made (a publish); zero: latencies count
	// from the resolver's write.
	Since time.Time
}

// Place places every node that hosts a target: the live ones by their
// answers, and the ones Consul recorded as hosting a target's service that
// did not answer as stale (killed, host down, cut off). Reasons pass the
// redaction policy: listeners never put values in them, and this makes sure.
func Place(targets []Target, in Inputs) View {
	v := View{Counts: map[string]int{}}
	for _, node := range slices.Sorted(maps.Keys(in.Answers)) {
		if p, ok := in.nodeOf(targets, in.Answers[node]); ok {
			v.Nodes = append(v.Nodes, p)
		}
	}
	for _, s := range in.Recorded {
		if _, live := in.Answers[s.Node]; live || (s.Federation != "" && s.Federation != in.Federation) {
			continue
		}
		if slices.ContainsFunc(targets, func(t Target) bool { _, ok := s.Details[t.Service]; return ok }) {
			v.Nodes = append(v.Nodes, Node{Node: s.Node, State: Stale,
				Reason: fmt.Sprintf("no answer over NATS; last recorded %s at %s", s.Result, s.At.Format(time.RFC3339))})
		}
	}
	slices.SortFunc(v.Nodes, func(a, b Node) int { return cmp.Compare(a.Node, b.Node) })
	for i := range v.Nodes {
		v.Nodes[i].Reason = redactReason(v.Nodes[i].Reason)
		v.Counts[v.Nodes[i].State]++
	}
	return v
}

// nodeOf is a live node's progress over the targets it hosts; false when
// it hosts none (another service, or another region's binding).
func (in Inputs) nodeOf(targets []Target, c events.NodeChanges) (Node, bool) {
	p := Node{Node: c.Node, State: Applied}
	hosts, latency := false, time.Duration(0)
	for _, t := range targets {
		i := slices.IndexFunc(c.Services, func(s events.ServiceChanges) bool { return s.Service == t.Service && s.Region == t.Region })
		if i < 0 {
			continue
		}
		hosts = true
		state, reason, r := in.targetState(t, c.Services[i].Revisions, c)
		if rank[state] > rank[p.State] {
			p.State, p.Reason = state, reason
		}
		if r.Finished.After(p.Applied) {
			p.Applied = r.Finished
		}
		latency = max(latency, changeLatency(r, in.Since))
	}
	if p.State != Applied {
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
func (in Inputs) targetState(t Target, revs []events.AppliedRevision, c events.NodeChanges) (state, reason string, applied events.AppliedRevision) {
	// The oldest applied revision at or above the target: the one that
	// brought the change.
	for i := len(revs) - 1; i >= 0; i-- {
		if r := revs[i]; r.Revision >= t.Revision && r.State == events.RevisionApplied {
			return Applied, "", r
		}
	}
	for _, r := range revs {
		if r.Revision < t.Revision {
			break
		}
		switch r.State {
		case events.RevisionFailed:
			return Failed, fmt.Sprintf("%s revision %d: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		case events.RevisionHalted:
			if in.resumed(c.Federation, r.Group) {
				return Pending, "rollout group " + r.Group + " resumed; not applied yet", events.AppliedRevision{}
			}
			return Halted, fmt.Sprintf("%s revision %d: rollout halted: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		case events.RevisionSkipped:
			return Skipped, fmt.Sprintf("%s revision %d: %s", t.Service, r.Revision, r.Reason), events.AppliedRevision{}
		}
	}
	switch {
	case c.Paused:
		return Paused, "paused: patchbay resume applies it", events.AppliedRevision{}
	case c.Running:
		return Running, "", events.AppliedRevision{}
	}
	return Pending, "", events.AppliedRevision{}
}

// resumed reports whether group, which halted a revision, is known to be
// halted no more.
func (in Inputs) resumed(fed, group string) bool {
	if in.Halts == nil || group == "" {
		return false
	}
	_, halted := in.Halts[cmp.Or(fed, in.Federation)+"/"+group]
	return !halted
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

// Latency is the time from the change to each node's files.
type Latency struct {
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Slowest string        `json:"slowest_node"`
	Max     time.Duration `json:"max_ns"`
}

// Latencies summarizes the applied nodes' latencies; nil when none.
func Latencies(nodes []Node) *Latency {
	var ds []time.Duration
	s := &Latency{}
	for _, n := range nodes {
		if n.State != Applied || n.Latency <= 0 {
			continue
		}
		ds = append(ds, n.Latency)
		if n.Latency > s.Max {
			s.Max, s.Slowest = n.Latency, n.Node
		}
	}
	if len(ds) == 0 {
		return nil
	}
	s.P50, s.P99 = percentile(ds, 50), percentile(ds, 99)
	return s
}

// percentile is the nearest-rank percentile of ds (sorted in place).
func percentile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	rank := (p*len(ds) + 99) / 100 // ceil(p/100 × n)
	return ds[max(rank, 1)-1]
}

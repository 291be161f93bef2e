package console

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/registry"
)

// Change is one recent change spreading: the binding revisions one
// resolver pass wrote (they share a Consul modify index), and where each
// node that hosts them stands. Reasons follow the redaction policy
// (tracking); no value is shown.
type Change struct {
	Federation string            `json:"federation"`
	Index      uint64            `json:"index"`
	Written    time.Time         `json:"written,omitzero"` // the resolver's write, by its clock
	Revisions  []tracking.Target `json:"revisions"`
	Nodes      []tracking.Node   `json:"nodes"`
	Counts     map[string]int    `json:"counts"`
	Summary    string            `json:"summary"`
	// Latency is from the resolver's write to each applied node's files.
	Latency *tracking.Latency `json:"latency,omitempty"`
}

// maxChanges is how many recent changes the state carries.
const maxChanges = 10

// WithLiveChanges makes the state carry the recent changes, as the live
// listeners report them (events.ChangesSubject), on every refresh while
// someone watches. fn returns the answers by node.
func WithLiveChanges(fn func(context.Context) map[string]events.NodeChanges) Option {
	return func(s *Server) { s.changes = fn }
}

type changeKey struct {
	fed   string
	index uint64
}

// recentChanges groups the revisions the listeners reported and the
// stored bindings by (federation, modify index), newest first, and places
// every node along each.
func recentChanges(answers map[string]events.NodeChanges, stored []registry.StoredBinding, recorded []registry.Status, halts map[string]registry.Halt) []Change {
	groups := map[changeKey]*Change{}
	add := func(fed string, index uint64, t tracking.Target, written time.Time) {
		if index == 0 || t.Revision == 0 {
			return
		}
		k := changeKey{fed, index}
		c := groups[k]
		if c == nil {
			c = &Change{Federation: fed, Index: index}
			groups[k] = c
		}
		if !slices.Contains(c.Revisions, t) {
			c.Revisions = append(c.Revisions, t)
		}
		if !written.IsZero() && (c.Written.IsZero() || written.Before(c.Written)) {
			c.Written = written
		}
	}
	for _, a := range answers {
		for _, s := range a.Services {
			for _, r := range s.Revisions {
				add(a.Federation, r.Index, tracking.Target{Service: s.Service, Region: s.Region, Revision: r.Revision}, r.Written)
			}
		}
	}
	for _, sb := range stored {
		if b, err := binding.DecodeBinding(sb.Key, sb.Value); err == nil {
			add(sb.Federation, sb.ModifyIndex, tracking.Target{Service: sb.Service, Region: sb.Region, Revision: b.Revision}, time.Time{})
		}
	}
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b changeKey) int {
		return cmp.Or(cmp.Compare(b.index, a.index), cmp.Compare(a.fed, b.fed))
	})
	out := make([]Change, 0, min(len(keys), maxChanges))
	for _, k := range keys[:min(len(keys), maxChanges)] {
		c := groups[k]
		slices.SortFunc(c.Revisions, func(a, b tracking.Target) int { return cmp.Compare(a.String(), b.String()) })
		v := tracking.Place(c.Revisions, tracking.Inputs{Federation: c.Federation, Answers: answersOf(answers, c.Federation), Recorded: recorded, Halts: halts})
		c.Nodes, c.Counts, c.Summary, c.Latency = v.Nodes, v.Counts, v.Summary(), tracking.Latencies(v.Nodes)
		if c.Nodes == nil {
			c.Nodes = []tracking.Node{}
		}
		out = append(out, *c)
	}
	return out
}

// answersOf keeps the answers of one federation's listeners.
func answersOf(answers map[string]events.NodeChanges, fed string) map[string]events.NodeChanges {
	out := map[string]events.NodeChanges{}
	for node, a := range answers {
		if a.Federation == fed {
			out[node] = a
		}
	}
	return out
}

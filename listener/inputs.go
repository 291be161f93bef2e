package listener

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// inputs is the listener's copy of what its runs read: each hosted
// service's manifest and binding. A run reads Consul only when the copy
// cannot be trusted: at start, for a service it does not hold, after a
// deletion, an oversized binding or a manifest change (the binding's
// manifest digest differs), and after a resync (NATS reconnected).
// Otherwise events, and the reads of anti-entropy that found a difference,
// keep it current and a run reads nothing from Consul.
//
// Consul is the source of truth, events only bring its changes early:
// anyone who can publish on NATS can send an event, with any revision. So
// what an event brought is held only until a Consul read that began after
// it (anti-entropy's, every interval, or a run's): that read replaces it
// unless it confirms it, whatever the revisions say. Revisions only order
// what arrives concurrently: a read racing with an event is older than the
// event and does not replace it, and an event older than what is held is
// ignored, so a reordered event cannot roll a binding back.
//
// Events arrive on nats.go's goroutines and runs read from the queue's, so
// a mutex guards the map; no method does I/O while holding it.
type inputs struct {
	mu       sync.Mutex
	services map[string]*held
	events   uint64 // events applied so far: what a read's start is compared with
}

// held is one service's inputs as the listener holds them.
type held struct {
	hosted   registry.HostedService
	revision uint64 // of hosted.Binding
	digest   string // of hosted.Manifest
	stale    bool   // Consul must be read before the next run
	touched  uint64 // inputs.events after the last event applied to it
	source   string // who brought it: sourceEvents, sourceAntiEntropy or sourceConsul
}

func newInputs() *inputs { return &inputs{services: map[string]*held{}} }

// current returns the inputs of services in order, and false when any must
// be read from Consul first. The source is sourceAntiEntropy when
// anti-entropy brought any of them, else sourceEvents.
func (in *inputs) current(services []string) ([]registry.HostedService, string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	out, source := make([]registry.HostedService, len(services)), sourceEvents
	for i, s := range services {
		h := in.services[s]
		if h == nil || h.stale || h.hosted.Problem != "" {
			return nil, "", false
		}
		out[i] = h.hosted
		if h.source == sourceAntiEntropy {
			source = sourceAntiEntropy
		}
	}
	return out, source, true
}

// readStart marks the start of a Consul read, for fromConsul.
func (in *inputs) readStart() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.events
}

// fromConsul records what source (a run, or anti-entropy) read from Consul
// in a read that began at start (readStart). The read is the truth for
// every service no event touched since start: it replaces what is held,
// even a higher revision (a forged event's, or one Consul no longer has
// after a snapshot restore). What an event brought in meanwhile is newer
// than the read: a binding of a newer revision of the same key is kept,
// until the next read confirms or replaces it, and a service an event
// marked stale stays stale, so the next run reads it again.
func (in *inputs) fromConsul(hosted []registry.HostedService, start uint64, source string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, h := range hosted {
		was := in.services[h.Service]
		racing := was != nil && was.touched > start
		if racing && was.stale {
			continue
		}
		next := &held{hosted: h, revision: revisionOf(h.Binding), source: source}
		if h.Manifest != nil {
			next.digest = binding.ManifestDigest(h.Manifest)
		}
		if racing && sameKey(was.hosted.Binding, h.Binding) && was.revision > next.revision {
			next.hosted.Binding, next.revision, next.touched, next.source = was.hosted.Binding, was.revision, was.touched, was.source
		}
		in.services[h.Service] = next
	}
}

// holds reports whether the listener holds what Consul holds for h's
// service: the same manifest, by modify index, and the same binding, by
// modify index and content. A forged event can copy Consul's modify index,
// not its content; an event carries the stored bytes as the resolver wrote
// them (compact JSON), so a genuine one compares equal.
func (in *inputs) holds(h registry.HostedService) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	was := in.services[h.Service]
	if was == nil || was.stale || was.hosted.ManifestIndex != h.ManifestIndex {
		return false
	}
	return sameBinding(was.hosted.Binding, h.Binding)
}

// disputes reports whether Consul, in a read that began at start, does not
// confirm what the listener holds for h's service although no event
// touched it since: the read is the truth and fromConsul will replace what
// is held. A stale service, or one an event touched during the read, is
// not disputed: the next run, or the next read, decides.
func (in *inputs) disputes(h registry.HostedService, start uint64) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	was := in.services[h.Service]
	if was == nil || was.stale || was.touched > start {
		return false
	}
	return was.hosted.ManifestIndex != h.ManifestIndex || !sameBinding(was.hosted.Binding, h.Binding)
}

// invalidate makes the next run read everything from Consul.
func (in *inputs) invalidate() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, h := range in.services {
		h.stale = true
	}
}

// event applies a bindings event for a node in region and reports whether
// it concerns the node (a run is due), or why it does not.
func (in *inputs) event(e events.BindingsChanged, region string) (run bool, ignored string) {
	if e.Region != region && e.Region != "" {
		return false, ignoredOtherRegion
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	h := in.services[e.Service]
	if h == nil {
		// Not read yet: the run reads Consul, and a read already under way
		// (the node's first) began before this event, so it must not count.
		in.events++
		in.services[e.Service] = &held{stale: true, touched: in.events}
		return true, ""
	}
	uses := h.hosted.Binding
	if e.Region == "" && uses != nil && uses.Region != "" {
		return false, ignoredOtherRegion // the node uses its region's binding, not this one
	}
	if uses != nil && uses.Region == e.Region && e.Revision != 0 && e.Revision <= h.revision {
		return false, ignoredHeld // or older than what is held
	}
	in.events++
	h.touched = in.events
	var b struct {
		Manifest string `json:"manifest"`
	}
	if e.Revision == 0 || len(e.Binding) == 0 || json.Unmarshal(e.Binding, &b) != nil || b.Manifest != h.digest {
		h.stale = true // deleted, too large to carry, or the manifest changed
		return true, ""
	}
	h.hosted.Binding = &registry.StoredBinding{Federation: e.Federation, Service: e.Service, Region: e.Region, Value: e.Binding, ModifyIndex: e.ModifyIndex}
	h.revision, h.source = e.Revision, sourceEvents
	return true, ""
}

func sameBinding(a, b *registry.StoredBinding) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Region == b.Region && a.ModifyIndex == b.ModifyIndex && bytes.Equal(a.Value, b.Value)
}

func sameKey(a, b *registry.StoredBinding) bool {
	return a != nil && b != nil && a.Region == b.Region
}

// revisionOf reads a stored binding's revision; 0 when it has none or is
// malformed (the run reports that).
func revisionOf(sb *registry.StoredBinding) uint64 {
	if sb == nil {
		return 0
	}
	var b struct {
		Revision uint64 `json:"revision"`
	}
	_ = json.Unmarshal(sb.Value, &b)
	return b.Revision
}

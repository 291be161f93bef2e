// Package events defines patchbay's NATS subjects and messages, in one
// place: the resolver publishes them, listeners subscribe to them.
//
// A bindings event carries the binding itself, as stored in Consul, so that
// a listener applies a change without reading Consul: NATS does the fan-out
// and Consul sees O(1) work per change whatever the fleet size. Consul stays
// the source of truth: NATS delivers at most once, so listeners still
// compare revisions with Consul periodically (anti-entropy) and read it at
// start, when a binding is too large to travel in an event, and whenever
// they cannot trust what they hold. A listener ignores an event older than
// the revision it holds, so a reordered event is harmless; and it holds
// what an event brought only until a Consul read that began after it,
// which replaces it unless it confirms it, whatever the revisions say: a
// forged event, or a revision Consul went back from (a snapshot restore),
// lasts at most one anti-entropy interval.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/internal/errkind"
)

// BindingsSubject is where changes to a service's bindings are announced.
func BindingsSubject(federation, service string) string {
	return "patchbay." + federation + ".bindings." + service
}

// RolloutSubject announces that a rollout group was resumed, so that its
// nodes apply what they staged while it was halted.
func RolloutSubject(federation, group string) string {
	return "patchbay." + federation + ".rollout." + group
}

// StatusSubject is where `patchbay status` asks every live listener for
// its last run; each answers on the request's reply inbox. Listeners write
// their status to Consul only when a run's outcome changes, so this is how
// status stays fresh without a Raft write per node per run.
const StatusSubject = "patchbay.status"

// MaxInlineBinding is the largest binding an event carries. NATS's default
// maximum payload is 1 MiB; a larger binding (a load balancer with
// thousands of upstreams) is announced without its body and listeners read
// it from Consul.
const MaxInlineBinding = 512 << 10

// ErrMalformed: a message is not a patchbay event.
var ErrMalformed = errkind.New(errkind.Backend, "events: malformed message")

// BindingsChanged says that the binding of a service in a region has a new
// revision in Consul, and carries it.
type BindingsChanged struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Region     string `json:"region"`
	// Revision 0 means the binding was deleted.
	Revision uint64 `json:"revision"`
	// ModifyIndex is the binding key's Consul modify index after the write,
	// the same a listener would read from Consul.
	ModifyIndex uint64 `json:"modify_index,omitempty"`
	// Binding is the stored binding document; empty when it was deleted or
	// is larger than MaxInlineBinding.
	Binding json.RawMessage `json:"binding,omitempty"`
	// Written is when the resolver stored the binding, by its clock: the
	// start of the change-to-file latency listeners export.
	Written time.Time `json:"written,omitzero"`
}

// Encode returns the message body.
func (e BindingsChanged) Encode() []byte {
	b, _ := json.Marshal(e) // strings, numbers and a RawMessage that came from json.Marshal
	return b
}

// DecodeBindingsChanged parses the body of a message received on subject.
// An event must name the federation and service of its subject: a listener
// subscribes only to its services' subjects, so what it keeps per service
// stays bounded by them whatever a publisher sends.
func DecodeBindingsChanged(subject string, data []byte) (BindingsChanged, error) {
	var e BindingsChanged
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: bindings event: %w", ErrMalformed, err)
	}
	return e, onItsSubject("bindings", e.Federation, e.Service, subject, BindingsSubject)
}

// onItsSubject checks that an event of kind names a federation and a
// service, and came on the subject that subjectOf gives them.
func onItsSubject(kind, federation, service, subject string, subjectOf func(federation, service string) string) error {
	if service == "" || federation == "" {
		return fmt.Errorf("%w: %s event without federation or service", ErrMalformed, kind)
	}
	if want := subjectOf(federation, service); subject != want {
		return fmt.Errorf("%w: %s event for %s received on %s", ErrMalformed, kind, want, subject)
	}
	return nil
}

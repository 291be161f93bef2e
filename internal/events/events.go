// Package events defines patchbay's NATS subjects and messages, in one
// place: the resolver publishes them, listeners subscribe to them.
//
// Events are thin: they say that something changed and its revision, never
// the data itself, which stays in Consul, the single source of truth. NATS
// delivers at most once, so listeners also compare revisions with Consul
// periodically; a lost event delays convergence, never loses it.
package events

import (
	"encoding/json"
	"fmt"
)

// BindingsSubject is where changes to a service's bindings are announced.
func BindingsSubject(federation, service string) string {
	return "patchbay." + federation + ".bindings." + service
}

// AllBindingsSubject matches every bindings event of a federation.
func AllBindingsSubject(federation string) string {
	return "patchbay." + federation + ".bindings.*"
}

// RolloutSubject announces that a rollout group was resumed, so that its
// nodes apply what they staged while it was halted.
func RolloutSubject(federation, group string) string {
	return "patchbay." + federation + ".rollout." + group
}

// ControlSubject reaches one node's listener (pause, resume, provision).
func ControlSubject(node string) string { return "patchbay.control." + node }

// BindingsChanged says that the binding of a service in a region has a new
// revision in Consul.
type BindingsChanged struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Region     string `json:"region"`
	Revision   uint64 `json:"revision"`
}

// Encode returns the message body.
func (e BindingsChanged) Encode() []byte {
	b, _ := json.Marshal(e) // a struct of strings and a number always encodes
	return b
}

// DecodeBindingsChanged parses a message body.
func DecodeBindingsChanged(data []byte) (BindingsChanged, error) {
	var e BindingsChanged
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("events: malformed bindings event: %w", err)
	}
	return e, nil
}

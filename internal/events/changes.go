package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ChangesSubject is where `patchbay wait`, `publish --wait` and the
// console ask every live listener which binding revisions it received and
// applied; each answers on the request's reply inbox with a NodeChanges.
// Like StatusSubject, it keeps change tracking off Consul: no write per
// node per change.
const ChangesSubject = "patchbay.changes"

// MaxTrackedRevisions bounds how many revisions of one service a listener
// remembers: enough to follow the changes of the last minutes, small
// enough that an answer stays a few KiB whatever the change rate.
const MaxTrackedRevisions = 8

// Revision states a listener reports for one revision of one service.
const (
	RevisionReceived = "received" // announced, not applied yet
	RevisionApplied  = "applied"  // the run that read it finished ok
	RevisionFailed   = "failed"   // that run failed for the service
	RevisionSkipped  = "skipped"  // unresolved requirements: last good files kept
	RevisionHalted   = "halted"   // its rollout group is halted: staged, not applied
)

// NodeChanges is one listener's answer on ChangesSubject.
type NodeChanges struct {
	Node       string `json:"node"`
	Federation string `json:"federation"`
	Region     string `json:"region,omitempty"`
	// Services are the services the node hosts, each with the revisions
	// it saw, newest first.
	Services []ServiceChanges `json:"services"`
	Paused   bool             `json:"paused,omitempty"`
	Pending  bool             `json:"pending,omitempty"`
	Running  bool             `json:"running,omitempty"`
	// At is when the listener answered, by its clock.
	At time.Time `json:"at"`
}

// ServiceChanges is what a node did with the revisions of one service.
type ServiceChanges struct {
	Service string `json:"service"`
	// Region is the binding's region the node applies ("" for the
	// region-less binding): revisions count per service and region.
	Region    string            `json:"region"`
	Revisions []AppliedRevision `json:"revisions"`
}

// AppliedRevision is one revision's way through a node. Times are the
// node's clock; zero when the step has not happened.
type AppliedRevision struct {
	Revision uint64 `json:"revision"`
	State    string `json:"state"`
	// Index is the binding key's Consul modify index: bindings the
	// resolver wrote in one pass share it, so it groups a change's
	// revisions across services. 0 when unknown.
	Index uint64 `json:"index,omitempty"`
	// Written is when the resolver wrote the binding (from its event).
	Written time.Time `json:"written,omitzero"`
	// Received is when an event announced it, or when the run that read it
	// from Consul started.
	Received time.Time `json:"received,omitzero"`
	// Started and Finished bound the provision run that applied it.
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Steps are the run's steps for the service, in order.
	Steps []Step `json:"steps,omitempty"`
	// Group is the rollout group that halted it (state halted).
	Group string `json:"group,omitempty"`
	// Reason says why it failed, was skipped or halted; like `patchbay
	// status`, never a command's output or a value.
	Reason string `json:"reason,omitempty"`
}

// Step is one step of a run for one service.
type Step struct {
	Name   string `json:"name"` // render, install, provision, test NAME
	Result string `json:"result"`
	// Duration is known for steps that time themselves (provision).
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Encode returns the message body.
func (c NodeChanges) Encode() []byte {
	b, _ := json.Marshal(c) // strings, numbers and times
	return b
}

// DecodeNodeChanges parses an answer on ChangesSubject.
func DecodeNodeChanges(data []byte) (NodeChanges, error) {
	var c NodeChanges
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%w: changes answer: %w", ErrMalformed, err)
	}
	if c.Node == "" {
		return c, fmt.Errorf("%w: changes answer without a node", ErrMalformed)
	}
	return c, nil
}

// The changes request has one home, both ends, like the status request:
// listeners answer with RespondChanges, `patchbay wait` and the console
// ask with AskChanges.

// RespondChanges answers a changes request m with c; a request without a
// reply inbox is not answered.
func RespondChanges(m *nats.Msg, c NodeChanges) error {
	if m.Reply == "" {
		return nil
	}
	if err := m.Respond(c.Encode()); err != nil {
		return fmt.Errorf("events: answer changes request: %w", err)
	}
	return nil
}

// AskChanges asks every live listener which revisions it received and
// applied, and returns the answers by node. It waits at most wait, less
// once every node of expect answered (with none expected, it waits it
// out), or until ctx ends.
func AskChanges(ctx context.Context, nc *nats.Conn, expect []string, wait time.Duration) (map[string]NodeChanges, error) {
	sub, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		return nil, fmt.Errorf("events: changes request: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }() // only stops the answers this function no longer reads
	if err := nc.PublishRequest(ChangesSubject, sub.Subject, nil); err != nil {
		return nil, fmt.Errorf("events: changes request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pending := map[string]bool{}
	for _, n := range expect {
		pending[n] = true
	}
	answers := map[string]NodeChanges{}
	for len(pending) > 0 || len(expect) == 0 {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over
		}
		c, err := DecodeNodeChanges(msg.Data)
		if err != nil {
			continue // not a listener's answer
		}
		answers[c.Node] = c
		delete(pending, c.Node)
	}
	return answers, nil
}

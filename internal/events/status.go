package events

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/registry"
)

// The status request has one home, both ends: listeners answer with
// RespondStatus and `patchbay status` and the console ask with AskStatus,
// so the two cannot disagree on the subject, the encoding or when to stop
// waiting.

// RespondStatus answers a status request m with s; a request without a
// reply inbox is not answered.
func RespondStatus(m *nats.Msg, s registry.Status) error {
	if m.Reply == "" {
		return nil
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("events: encode status of %s: %w", s.Node, err)
	}
	if err := m.Respond(data); err != nil {
		return fmt.Errorf("events: answer status request: %w", err)
	}
	return nil
}

// AskStatus asks every live listener for its last run and lays the
// answers over recorded (the statuses Consul holds, written only when an
// outcome changes). It waits at most wait, less once every recorded node
// answered, or until ctx ends. A recorded node that did not answer is
// marked Stale. On error (the request never reached NATS) it returns
// recorded unchanged, none marked: silence then says nothing.
func AskStatus(ctx context.Context, nc *nats.Conn, recorded []registry.Status, wait time.Duration) ([]registry.Status, error) {
	byNode := make(map[string]registry.Status, len(recorded))
	for _, s := range recorded {
		byNode[s.Node] = s
	}
	sub, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		return recorded, fmt.Errorf("events: status request: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }() // only stops the answers this function no longer reads
	if err := nc.PublishRequest(StatusSubject, sub.Subject, nil); err != nil {
		return recorded, fmt.Errorf("events: status request: %w", err)
	}
	if err := nc.FlushTimeout(wait); err != nil { // the request reached NATS: silence then means no listener
		return recorded, fmt.Errorf("events: status request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	answered := map[string]bool{}
	pending := len(byNode) // recorded nodes yet to answer; with none recorded, wait it out
	for pending > 0 || len(recorded) == 0 {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over
		}
		s, err := registry.DecodeStatus("", "", msg.Data)
		if err != nil {
			continue // not a listener's answer
		}
		if _, known := byNode[s.Node]; known && !answered[s.Node] {
			pending--
		}
		byNode[s.Node], answered[s.Node] = s, true
	}
	out := make([]registry.Status, 0, len(byNode))
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		s := byNode[node]
		s.Stale = !answered[node]
		out = append(out, s)
	}
	return out, nil
}

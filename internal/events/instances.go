package events

import (
	"encoding/json"
	"fmt"
)

// InstancesSubject is where the resolver names the instances of a service
// that left the registry. Consul removes an instance when a server
// invalidates its session (its node looked failed for a moment, say),
// which the owner's own agent never sees: the owner would find out at its
// next read of its key, seconds later, while consumers go without the
// instance. The owner's listener hears it here and has the owner read its
// key at once. The subject is under patchbay.*.bindings.>, which the
// resolver's and listeners' NATS permissions already cover.
func InstancesSubject(federation, service string) string {
	return BindingsSubject(federation, service) + ".instances"
}

// MaxGoneInstances bounds the instances one event names; a pass that
// removes more announces the first ones only (owners read their keys on
// their own schedule anyway).
const MaxGoneInstances = 1000

// InstancesGone names instances of one service that left the registry.
type InstancesGone struct {
	Federation string   `json:"federation"`
	Service    string   `json:"service"`
	Instances  []string `json:"instances"` // instance IDs
}

// Encode returns the message body.
func (e InstancesGone) Encode() []byte {
	b, _ := json.Marshal(e) // strings only
	return b
}

// DecodeInstancesGone parses an instances event received on subject; it
// must name the federation and service of its subject, and at most
// MaxGoneInstances instances.
func DecodeInstancesGone(subject string, data []byte) (InstancesGone, error) {
	var e InstancesGone
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("%w: instances event: %w", ErrMalformed, err)
	}
	if err := onItsSubject("instances", e.Federation, e.Service, subject, InstancesSubject); err != nil {
		return e, err
	}
	if len(e.Instances) > MaxGoneInstances {
		return e, fmt.Errorf("%w: instances event names %d instances, more than %d", ErrMalformed, len(e.Instances), MaxGoneInstances)
	}
	return e, nil
}

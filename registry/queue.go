package registry

import "time"

// QueueState is a listener's provision queue as it answered a live status
// request; recorded statuses carry none (it changes with every trigger).
type QueueState struct {
	Pending bool      `json:"pending"`
	Running bool      `json:"running"`
	Paused  bool      `json:"paused"`
	RetryAt time.Time `json:"retry_at,omitzero"` // when a failed run is retried
}

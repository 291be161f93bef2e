package events

import (
	"errors"
	"testing"
)

// TestDecodeBindingsChangedSubject: an event naming another service or
// federation than its subject is malformed, so that a publisher on one
// subject cannot make a listener keep state for services it does not host.
func TestDecodeBindingsChangedSubject(t *testing.T) {
	subject, body := typicalEvent()
	tests := []struct {
		name    string
		subject string
		ok      bool
	}{
		{"its own subject", subject, true},
		{"another service's subject", BindingsSubject("default", "api"), false},
		{"another federation's subject", BindingsSubject("other", "app-www"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeBindingsChanged(tt.subject, body)
			if tt.ok && (err != nil || e.Service != "app-www") {
				t.Fatalf("DecodeBindingsChanged = %+v, %v; want the event", e, err)
			}
			if !tt.ok && !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeBindingsChanged on %s = %v, want ErrMalformed", tt.subject, err)
			}
		})
	}
}

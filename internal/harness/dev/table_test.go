package dev

import (
	"testing"
	"time"

	"github.com/patchbay/patchbay/listener"
)

// LAST PROVISION counts from when the run finished, as patchbay status's
// AGE does (the listener records its status at Started+Duration): a 21s
// run that started 30s ago finished 9s ago.
func TestLastProvisionIsWhenTheRunFinished(t *testing.T) {
	started := time.Date(2026, 12, 6, 10, 0, 0, 0, time.Local)
	run := &listener.RunReport{Started: started, Duration: 21200 * time.Millisecond}
	if got, want := (&table{}).lastProvision(run), "10:00:21 (21.2s)"; got != want {
		t.Errorf("printed table: %q, want %q", got, want)
	}
	run.Started = time.Now().Add(-30 * time.Second)
	if got, want := (&table{live: true}).lastProvision(run), "9s ago (21.2s)"; got != want {
		t.Errorf("live table: %q, want %q", got, want)
	}
}

package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// Both ends of the status request against a real NATS server: answering
// nodes replace their recorded status, a recorded node that stays silent
// is stale, a malformed answer is ignored, and the asker stops waiting as
// soon as every recorded node answered (its wait is an hour: only the
// early stop lets it return inside the test's context).
func TestStatusRequestRoundTrip(t *testing.T) {
	srv := testcluster.StartNATS(t)
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, node := range []string{"web-1", "web-2"} {
		nc := connect()
		if _, err := nc.Subscribe(events.StatusSubject, func(m *nats.Msg) {
			if err := events.RespondStatus(m, registry.Status{Node: node, Result: "ok", Revision: 7, At: at, Live: true}); err != nil {
				t.Errorf("respond: %v", err)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	junk := connect()
	if _, err := junk.Subscribe(events.StatusSubject, func(m *nats.Msg) { _ = m.Respond([]byte("not json")) }); err != nil {
		t.Fatal(err)
	}
	if err := junk.Flush(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		recorded  []string
		wantStale map[string]bool
		wait      time.Duration
	}{
		{"every recorded node answers: no waiting out the hour", []string{"web-1", "web-2"}, map[string]bool{"web-1": false, "web-2": false}, time.Hour},
		{"a silent recorded node is stale", []string{"web-1", "web-2", "gone-1"}, map[string]bool{"web-1": false, "web-2": false, "gone-1": true}, 2 * time.Second},
		{"nothing recorded: every answer, after the wait", nil, map[string]bool{"web-1": false, "web-2": false}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recorded []registry.Status
			for _, n := range tt.recorded {
				recorded = append(recorded, registry.Status{Node: n, Result: "failed", Revision: 3, At: at})
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			got, err := events.AskStatus(ctx, connect(), recorded, tt.wait)
			if err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatal("AskStatus waited past its context: it did not stop once every recorded node answered")
			}
			if len(got) != len(tt.wantStale) {
				t.Fatalf("got %d statuses %+v, want %d", len(got), got, len(tt.wantStale))
			}
			for _, s := range got {
				stale, ok := tt.wantStale[s.Node]
				switch {
				case !ok:
					t.Errorf("unexpected node %s", s.Node)
				case s.Stale != stale:
					t.Errorf("%s: stale %v, want %v", s.Node, s.Stale, stale)
				case !stale && (!s.Live || s.Revision != 7):
					t.Errorf("%s: %+v, want its live answer at revision 7", s.Node, s)
				}
			}
		})
	}
}

// A request without a reply inbox is not answered, and is not an error.
func TestRespondStatusWithoutReply(t *testing.T) {
	if err := events.RespondStatus(&nats.Msg{Subject: events.StatusSubject}, registry.Status{Node: "web-1"}); err != nil {
		t.Fatalf("RespondStatus without reply: %v", err)
	}
}

package listener_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/resolverd"
)

func newSigner(t *testing.T) *events.Signer {
	t.Helper()
	seed, _, err := events.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := events.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// metricValue reads one sample of the node's /metrics ("" when absent).
func metricValue(n *node, sample string) string {
	resp, err := http.Get("http://" + n.l.ControlAddr() + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// A listener given the resolver's public key applies no bindings event
// that the key did not sign: a forged event, unsigned, signed by another
// key, or signed and then altered, is counted and dropped, and the file
// keeps Consul's value; the resolver's own signed events still apply.
func TestForgedEventsAreRejected(t *testing.T) {
	c := newCluster(t)
	c.antiEntropy = "10m" // changes arrive by events alone
	resolverKey, attacker := newSigner(t), newSigner(t)
	c.nodeExtra = "events: {public_keys: [" + resolverKey.PublicKey() + "]}\n"
	c.publish(`id: web
requires: {DB: "{DB_URL}"}
templates:
  env:
    contents: "DB={{ binding \"DB\" }}\n"
    destination: /etc/web/env`)
	c.provSetDatastore(t, "DB_URL", "postgres://one")
	c.startResolver(resolverd.WithSigner(resolverKey))
	n := c.startListener("web-1", "{quiet: 50ms, max_wait: 200ms}", "  - service: web\n")
	testcluster.Eventually(t, 30*time.Second, "web-1 renders Consul's value", func() bool {
		return n.file("/etc/web/env") == "DB=postgres://one\n" && idle(n)
	})

	subject := events.BindingsSubject("default", "web")
	forged := c.forgedEvent(t, "postgres://one", "postgres://evil")
	signedBy := func(s *events.Signer) *nats.Msg {
		m, err := s.Msg(subject, forged)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name, reason string
		msg          func() *nats.Msg
	}{
		{"unsigned", "unsigned", func() *nats.Msg { return &nats.Msg{Subject: subject, Data: forged} }},
		{"signed by another key", "unknown-key", func() *nats.Msg { return signedBy(attacker) }},
		{"signed by the resolver's key, then altered", "bad-signature", func() *nats.Msg {
			genuine := c.forgedEvent(t, "postgres://one", "postgres://one")
			m, err := resolverKey.Msg(subject, genuine)
			if err != nil {
				t.Fatal(err)
			}
			m.Data = forged
			return m
		}},
		{"a resolver's signature with another resolver's key name", "bad-signature", func() *nats.Msg {
			m := signedBy(attacker)
			m.Header.Set(events.KeyHeader, resolverKey.PublicKey())
			return m
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sample := `patchbay_listener_events_rejected_total{reason="` + tc.reason + `"}`
			before, _ := strconv.Atoi(metricValue(n, sample))
			runs := n.runs.Load()
			if err := c.nc.PublishMsg(tc.msg()); err != nil {
				t.Fatal(err)
			}
			testcluster.Eventually(t, 10*time.Second, "the event is counted as rejected, or applied", func() bool {
				got, _ := strconv.Atoi(metricValue(n, sample))
				return got == before+1 || n.file("/etc/web/env") != "DB=postgres://one\n"
			})
			if got := n.file("/etc/web/env"); got != "DB=postgres://one\n" {
				t.Fatalf("the forged event was applied: the file holds %q, want Consul's DB=postgres://one", got)
			}
			if got := n.runs.Load(); got != runs {
				t.Errorf("%d runs after a rejected event, want none", got-runs)
			}
		})
	}

	// The resolver's own events, signed, still carry changes.
	c.provSetDatastore(t, "DB_URL", "postgres://two")
	testcluster.Eventually(t, 30*time.Second, "web-1 applies the resolver's signed event", func() bool {
		return n.file("/etc/web/env") == "DB=postgres://two\n"
	})
	for _, reason := range []string{"unsigned", "unknown-key"} {
		if got := metricValue(n, `patchbay_listener_events_rejected_total{reason="`+reason+`"}`); got != "1" {
			t.Errorf("rejected %s = %s after the resolver's event, want 1", reason, got)
		}
	}
	if got := metricValue(n, `patchbay_listener_events_rejected_total{reason="bad-signature"}`); got != "2" {
		t.Errorf("rejected bad-signature = %s after the resolver's event, want 2", got)
	}
}

// forgedEvent is the body of a bindings event of web one revision ahead
// of Consul's, with from replaced by to in its values.
func (c *cluster) forgedEvent(t *testing.T, from, to string) []byte {
	t.Helper()
	sb, err := c.reg.Binding(context.Background(), "default", "web", "")
	if err != nil || sb == nil {
		t.Fatalf("web's binding: %v, %v", sb, err)
	}
	var b binding.Binding
	if err := json.Unmarshal(sb.Value, &b); err != nil {
		t.Fatal(err)
	}
	b.Revision++
	for k, v := range b.Vars {
		v.Value = strings.ReplaceAll(v.Value, from, to)
		b.Vars[k] = v
	}
	value, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return events.BindingsChanged{Federation: "default", Service: "web", Revision: b.Revision, ModifyIndex: sb.ModifyIndex + 1, Binding: value}.Encode()
}

// Without keys a listener says once, at start, that it trusts events
// unauthenticated; with keys it does not.
func TestUnkeyedListenerWarns(t *testing.T) {
	c := newCluster(t)
	c.publish("id: web\n")
	cases := []struct {
		node, extra string
		want        int64
	}{
		{"web-1", "", 1},
		{"web-2", "events: {public_keys: [" + newSigner(t).PublicKey() + "]}\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.node, func(t *testing.T) {
			var logged atomic.Int64
			c.nodeLog = slog.New(countingHandler{Handler: slog.DiscardHandler, part: "trusted unauthenticated", count: &logged})
			c.nodeExtra = tc.extra
			n := c.startListener(tc.node, "{}", "  - service: web\n")
			testcluster.Eventually(t, 30*time.Second, tc.node+" runs", func() bool { return n.runs.Load() > 0 })
			if got := logged.Load(); got != tc.want {
				t.Errorf("%d warnings that events are trusted unauthenticated, want %d", got, tc.want)
			}
		})
	}
}

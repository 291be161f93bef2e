package registry

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

func TestHalts(t *testing.T) {
	consul := testcluster.StartConsul(t)
	ctx := context.Background()

	rollout := func(t *testing.T, c *Client, fed, group string) *RolloutGroup {
		t.Helper()
		g, err := c.Rollout(fed, group)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	t.Run("none halted", func(t *testing.T) {
		c := newClient(t, consul)
		got, err := c.Halts(ctx)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("Halts = %v, %v; want an empty map", got, err)
		}
	})

	t.Run("every federation, not the semaphores", func(t *testing.T) {
		c := newClient(t, consul)
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		www := Halt{Node: "web-2", Reason: "health check failed", At: at}
		if err := rollout(t, c, "default", "www").SetHalt(ctx, www); err != nil {
			t.Fatal(err)
		}
		if err := rollout(t, c, "seatgeek", "api").SetHalt(ctx, Halt{Node: "api-1", Reason: "provision failed", At: at}); err != nil {
			t.Fatal(err)
		}
		// A group applying normally holds semaphore entries under its
		// rollout prefix: they are no halt.
		release, err := rollout(t, c, "default", "lb").Acquire(ctx, "lb-1", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = release() }()
		// Another prefix's halts belong to another patchbay.
		other, err := New(WithAddress(consul.Addr), WithPrefix(strings.TrimSuffix(c.keys.prefix, "/")+"-other/"), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		if err := rollout(t, other, "default", "elsewhere").SetHalt(ctx, www); err != nil {
			t.Fatal(err)
		}

		got, err := c.Halts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"default/www", "seatgeek/api"}) {
			t.Fatalf("halted groups = %v, want default/www and seatgeek/api", keys)
		}
		if h := got["default/www"]; h.Node != "web-2" || h.Reason != "health check failed" || !h.At.Equal(at) {
			t.Fatalf("default/www = %+v", h)
		}

		if was, err := rollout(t, c, "default", "www").Resume(ctx); err != nil || !was {
			t.Fatalf("Resume = %v, %v", was, err)
		}
		got, err = c.Halts(ctx)
		if _, still := got["default/www"]; err != nil || still || len(got) != 1 {
			t.Fatalf("after resume: Halts = %v, %v", got, err)
		}
	})

	t.Run("unreadable record still halts", func(t *testing.T) {
		c := newClient(t, consul)
		key := c.keys.rollout("default", "www") + "halt"
		if _, err := consul.Client.KV().Put(&api.KVPair{Key: key, Value: []byte("{not json")}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := c.Halts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h, ok := got["default/www"]
		if !ok || !strings.Contains(h.Reason, "unreadable halt record at "+key) {
			t.Fatalf("Halts = %+v; want default/www halted with an unreadable record", got)
		}
		// Halted, the per-group reading, agrees.
		if one, err := rollout(t, c, "default", "www").Halted(ctx); err != nil || one == nil || one.Reason != h.Reason {
			t.Fatalf("Halted = %+v, %v; Halts says %+v", one, err, h)
		}
	})

	t.Run("unreachable consul", func(t *testing.T) {
		c, err := New(WithAddress("127.0.0.1:1"), WithTimeout(2*time.Second), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Halts(ctx); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Halts against a closed port: %v; want ErrUnreachable", err)
		}
	})
}

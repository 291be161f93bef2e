package testcluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/nats-io/nats.go"
)

// TestServers proves both servers are real and leave nothing running.
func TestServers(t *testing.T) {
	t.Run("consul KV round trip", func(t *testing.T) {
		c := StartConsul(t)
		kv := c.Client.KV()
		want := []byte("postgres://db:5432/app")
		if _, err := kv.Put(&api.KVPair{Key: "patchbay/test/key", Value: want}, nil); err != nil {
			t.Fatalf("put: %v", err)
		}
		got, _, err := kv.Get("patchbay/test/key", &api.QueryOptions{RequireConsistent: true})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if got == nil || !bytes.Equal(got.Value, want) {
			t.Fatalf("get = %v, want value %q", got, want)
		}
		if err := c.Stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		WaitClosed(t, c.Addr, 10*time.Second)
	})
	t.Run("nats publish subscribe", func(t *testing.T) {
		n := StartNATS(t)
		nc, err := nats.Connect(n.URL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("patchbay.default.bindings.app-www")
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		if err := nc.Publish("patchbay.default.bindings.app-www", []byte(`{"revision":1}`)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("next message: %v", err)
		}
		if string(msg.Data) != `{"revision":1}` {
			t.Fatalf("message = %q", msg.Data)
		}
		addr := n.Server.Addr().String()
		nc.Close()
		n.Stop()
		WaitClosed(t, addr, 5*time.Second)
	})
}

package registry

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/resolver"
)

// An instance is live only while a session of the Consul node it names
// holds its key. A node's token may write any instance key of its
// federation, but may create sessions on its own node only: a key written
// without a session, or acquired by a session of another node, must not
// bind (the "Integrity" issue: db@evil:5432, no session, bound app's
// DATABASE_URL to 6.6.6.6).
func TestInstanceLiveness(t *testing.T) {
	consul := testcluster.StartConsul(t)
	ctx := context.Background()
	agent := consul.Server.Config.NodeName
	c := newClient(t, consul, WithSharedAgentNodes()) // strict, whatever the environment says
	publish(t, c, parseManifest(t, "id: db\nprovides: {DATABASE_URL: \"postgres://{HOST}:{PORT}/app\"}\n"))
	publish(t, c, parseManifest(t, "id: app\nrequires: {DATABASE_URL: {key: DATABASE_URL, select: all}}\n"))

	// The genuine instance: registered by its owner on the agent's node.
	genuine := register(t, c, InstanceSpec{Federation: "default", Service: "db", Node: agent, Address: "10.0.0.1", Port: 5432})
	waitRegistered(t, genuine)

	// A node "mallory" in the catalog, with a session of its own: what
	// mallory's token (session "mallory" write) can create.
	malloryHealth := &api.AgentCheck{Node: "mallory", CheckID: "serfHealth", Name: "serf", Status: api.HealthPassing}
	if _, err := consul.Client.Catalog().Register(&api.CatalogRegistration{Node: "mallory", Address: "127.0.0.2", Check: malloryHealth}, nil); err != nil {
		t.Fatal(err)
	}
	mallory, _, err := consul.Client.Session().Create(&api.SessionEntry{Node: "mallory", Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A session of the agent's node, as web-1's listener would hold.
	own, _, err := consul.Client.Session().Create(&api.SessionEntry{Behavior: api.SessionBehaviorDelete}, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := []struct {
		port    int
		session string
		reason  string
	}{
		{5432, "", "not live: its key holds no session"},
		{5433, mallory, "not live: held by a session of node mallory, not evil"},
		{5434, own, "not live: held by a session of node " + agent + ", not evil"},
	}
	for _, f := range forged {
		putInstance(t, consul, c, binding.Instance{Service: "db", Federation: "default", Node: "evil", Address: "6.6.6.6", Port: f.port, Index: -1,
			Provides: map[string]string{"DATABASE_URL": "postgres://6.6.6.6/app"}}, f.session)
	}
	// A held key rewritten by a plain write (any token of the federation
	// may): Consul keeps the session, so only the changed value tells.
	held := binding.Instance{Service: "db", Federation: "default", Node: agent, Address: "10.0.0.9", Port: 5436, Index: -1, Provides: map[string]string{"DATABASE_URL": "postgres://10.0.0.9/app"}}
	putInstance(t, consul, c, held, own)
	held.Address, held.Provides = "6.6.6.6", map[string]string{"DATABASE_URL": "postgres://6.6.6.6/app"}
	putInstance(t, consul, c, held, "")
	rewritten := binding.InstanceID("db", agent, 5436)

	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Instances) != 1 || snap.Instances[0].ID != genuine.ID() {
		t.Fatalf("live instances = %+v, want only %s", snap.Instances, genuine.ID())
	}
	b, ok := resolver.Resolve(snap).Lookup("default", "app", "")
	if !ok {
		t.Fatal("no binding of app")
	}
	if v := b.Vars["DATABASE_URL"]; v.Value != "postgres://10.0.0.1:5432/app" {
		t.Fatalf("DATABASE_URL = %q, want the genuine instance only", v.Value)
	}
	x, err := resolver.Explain(snap, "default", "app", "", "DATABASE_URL")
	if err != nil {
		t.Fatal(err)
	}
	why := map[string]string{}
	for _, cand := range x.Candidates {
		why[cand.Instance] = cand.Reason
	}
	for _, f := range forged {
		id := binding.InstanceID("db", "evil", f.port)
		if why[id] != f.reason {
			t.Errorf("explain %s: %q, want %q", id, why[id], f.reason)
		}
	}
	if want := "not live: its value was rewritten after its session acquired it"; why[rewritten] != want {
		t.Errorf("explain %s: %q, want %q", rewritten, why[rewritten], want)
	}
	if !strings.HasPrefix(why[genuine.ID()], "listed") {
		t.Errorf("explain %s: %q, want it listed", genuine.ID(), why[genuine.ID()])
	}

	// Where one agent serves several simulated nodes (patchbay dev,
	// tests), its sessions hold any node's instances; no other node's do.
	shared := newClient(t, consul, WithSharedAgentNodes(agent), WithPrefix(c.Prefix()))
	snap, err = shared.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range snap.Instances {
		ids = append(ids, in.ID)
	}
	want := []string{genuine.ID(), binding.InstanceID("db", "evil", 5434)}
	slices.Sort(want)
	if !slices.Equal(ids, want) || len(snap.NotLive) != 3 {
		t.Fatalf("shared agent: live %v (want %v), not live %+v", ids, want, snap.NotLive)
	}
}

// putInstance writes an instance key as a token holder could by hand:
// acquired by session, or, with session "", put without one.
func putInstance(t *testing.T, consul *testcluster.Consul, c *Client, in binding.Instance, session string) {
	t.Helper()
	in.ID = binding.InstanceID(in.Service, in.Node, in.Port)
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	pair := &api.KVPair{Key: c.keys.instance(in.Federation, in.Service, in.ID), Value: data, Session: session}
	if session == "" {
		_, err = consul.Client.KV().Put(pair, nil)
	} else {
		var ok bool
		if ok, _, err = consul.Client.KV().Acquire(pair, nil); err == nil && !ok {
			t.Fatalf("acquire %s: refused", pair.Key)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// aclPolicies are the hcl blocks of docs/security.md's "Consul ACL policy per
// federation", by role: the first bold words before each block.
func aclPolicies(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "## Consul ACL policy per federation\n")
	if !ok {
		t.Fatal("docs/security.md has no section \"Consul ACL policy per federation\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]string{}
	role := regexp.MustCompile(`\*\*([A-Za-z ]+?)\.?\*\*`)
	for rest := section; ; {
		before, after, found := strings.Cut(rest, "```hcl\n")
		if !found {
			break
		}
		block, next, _ := strings.Cut(after, "```")
		names := role.FindAllStringSubmatch(before, -1)
		if len(names) == 0 {
			t.Fatalf("README: an hcl block without a **role** before it:\n%s", block)
		}
		out[names[len(names)-1][1]] = block
		rest = next
	}
	for _, r := range []string{"Listener", "People and CI", "Resolver"} {
		if out[r] == "" {
			t.Fatalf("README: no hcl policy for %s (found %d blocks)", r, len(out))
		}
	}
	return out
}

// keyRule is a KV rule of a policy.
var keyRule = regexp.MustCompile(`(?m)^(key|key_prefix) "([^"]*)"`)

// Every policy README gives but the resolver's is scoped to its
// federation: with each, a seatgeek token can neither read nor write
// pivotly's manifests, datastores, bindings, instances, indexes, locks or
// rollout, and can do what its role needs in seatgeek. The policies are
// read from README.md, so the two cannot drift apart.
func TestReadmeACLPolicies(t *testing.T) {
	policies := aclPolicies(t)
	for _, role := range []string{"Listener", "People and CI"} {
		for _, m := range keyRule.FindAllStringSubmatch(policies[role], -1) {
			if !strings.Contains(m[2], "/seatgeek/") && (m[1] != "key" || !strings.HasPrefix(m[2], "patchbay/status/")) {
				t.Errorf("README %s policy: %s %q is not scoped to federation seatgeek", role, m[1], m[2])
			}
		}
	}

	consul := testcluster.StartConsul(t, testcluster.WithACLs(aclRoot))
	agent := consul.Server.Config.NodeName
	addr := "--consul-addr=" + consul.Addr
	root := aclClient(t, consul, aclRoot)
	pivotly := seedFederations(t, consul, root, agent)

	// The listener's node is the agent's: its sessions are on that node.
	tokens := map[string]string{
		"Listener":      testcluster.CreateToken(t, consul, aclRoot, strings.ReplaceAll(policies["Listener"], "web-1", agent)),
		"People and CI": testcluster.CreateToken(t, consul, aclRoot, policies["People and CI"]),
	}
	for role, token := range tokens {
		t.Run(role+" cannot touch pivotly", func(t *testing.T) {
			c := aclConsulClient(t, consul, token)
			for _, key := range pivotly {
				if pair, _, err := c.KV().Get(key, nil); pair != nil || !isForbidden(err) {
					t.Errorf("read %s: got %v, err %v; want 403", key, pair != nil, err)
				}
				if _, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte("x")}, nil); !isForbidden(err) {
					t.Errorf("write %s: err %v; want 403", key, err)
				}
			}
			pairs, _, err := c.KV().List("patchbay/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pairs {
				if strings.Contains(p.Key, "pivotly") {
					t.Errorf("list patchbay/ shows %s", p.Key)
				}
			}
		})
	}

	t.Run("People and CI work in seatgeek only", func(t *testing.T) {
		tok := "--consul-token=" + tokens["People and CI"]
		fresh := writeServices(t, map[string]string{"worker": "id: worker\nfederation: seatgeek\n"})
		steps := []struct {
			args   []string
			code   int
			stdout string
		}{
			{[]string{"resolve", "app-www", "--federation", "seatgeek"}, 0, "postgres://10.0.0.1:5432/app"},
			{[]string{"explain", "app-www", "DATABASE_URL", "--federation", "seatgeek"}, 0, "chosen"},
			{[]string{"graph", "--federation", "seatgeek"}, 0, "app-www"},
			{[]string{"publish", fresh}, 0, "published service worker (federation seatgeek)"},
			{[]string{"datastore", "set", "CACHE_URL", "redis://c", "--federation", "seatgeek"}, 0, ""},
			{[]string{"datastore", "get", "PCI_DB_PASSWORD", "--federation", "pivotly"}, 2, ""},
			{[]string{"resolve", "app-www", "--federation", "pivotly"}, 2, ""},
			{[]string{"publish", writeServices(t, map[string]string{"x": "id: x\nfederation: pivotly\n"})}, 2, ""},
			{[]string{"unpublish", "db", "--federation", "pivotly"}, 2, ""},
		}
		// Without the sessions no instance can be told live: refused, not
		// resolved as if none were.
		noSessions := strings.Replace(policies["People and CI"], `session_prefix "" { policy = "read" }`, "", 1)
		code, _, stderr := patchbay(t, "resolve", "app-www", "--federation", "seatgeek", addr, "--consul-token="+testcluster.CreateToken(t, consul, aclRoot, noSessions))
		if code != 2 || !strings.Contains(stderr, `add the rule session_prefix "" { policy = "read" } to its policy`) {
			t.Errorf("resolve without session read: exit %d (want 2)\nstderr:\n%s", code, stderr)
		}
		for _, s := range steps {
			code, stdout, stderr := patchbay(t, append(s.args, addr, tok)...)
			if code != s.code || !strings.Contains(stdout, s.stdout) || strings.Contains(stdout+stderr, "s3cret") {
				t.Errorf("%v: exit %d (want %d), want %q in stdout\nstdout:\n%s\nstderr:\n%s", s.args, code, s.code, s.stdout, stdout, stderr)
			}
		}
	})

	t.Run("Listener works in seatgeek", func(t *testing.T) {
		c := aclClient(t, consul, tokens["Listener"])
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o, err := c.Register(ctx, registry.InstanceSpec{Federation: "seatgeek", Service: "app-www", Node: agent, Address: "10.0.0.2", Port: 8080})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = o.Close(context.Background()) }()
		if err := o.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		hosted, err := c.ReadNode(ctx, "seatgeek", []string{"app-www", "lb-public"}, "")
		if err != nil || hosted[0].Manifest == nil {
			t.Fatalf("read node: %+v, %v", hosted, err)
		}
		if err := c.PutStatus(ctx, registry.Status{Node: agent, Federation: "seatgeek", Result: "ok", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	})

	// The resolver's token crosses federations by design (README says so):
	// it must see both, or it would resolve from part of the registry.
	t.Run("Resolver reads every federation", func(t *testing.T) {
		c := aclClient(t, consul, testcluster.CreateToken(t, consul, aclRoot, policies["Resolver"]))
		snap, err := c.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		feds := map[string]int{}
		for _, in := range snap.Instances {
			feds[in.Federation]++
		}
		if feds["seatgeek"] == 0 || feds["pivotly"] == 0 {
			t.Fatalf("resolver sees live instances %v, want both federations'", feds)
		}
	})
}

// seedFederations publishes the same services in seatgeek and pivotly,
// with a live db instance in each, and returns pivotly's keys of every
// kind.
func seedFederations(t *testing.T, consul *testcluster.Consul, root *registry.Client, agent string) []string {
	t.Helper()
	ctx := context.Background()
	for _, fed := range []string{"seatgeek", "pivotly"} {
		for _, doc := range []string{
			"id: db\nfederation: " + fed + "\nprovides: {PRIMARY_DATABASE_URL: \"postgres://{HOST}:{PORT}/app\"}\n",
			"id: app-www\nfederation: " + fed + "\nrequires: {DATABASE_URL: \"{PRIMARY_DATABASE_URL}\"}\n",
			"id: lb-public\nfederation: " + fed + "\n",
		} {
			m, err := manifest.Parse("test.yaml", []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := root.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := root.SetDatastore(ctx, "pivotly", "PCI_DB_PASSWORD", "s3cret"); err != nil {
		t.Fatal(err)
	}
	port := 5432
	for _, fed := range []string{"seatgeek", "pivotly"} {
		o, err := root.Register(ctx, registry.InstanceSpec{Federation: fed, Service: "db", Node: agent, Address: "10.0.0.1", Port: port})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Close(context.Background()) })
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = o.WaitRegistered(wctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{
		"patchbay/registry/manifests/pivotly/db",
		"patchbay/registry/datastores/pivotly/PCI_DB_PASSWORD",
		"patchbay/registry/instances/pivotly/db/db@" + agent + ":5432",
		"patchbay/bindings/pivotly/app-www/_",
		"patchbay/indexes/pivotly/db/0",
		"patchbay/locks/unique/pivotly/db",
		"patchbay/rollout/pivotly/www/halt",
	}
	for _, k := range keys[3:] { // the others exist already
		if _, err := consul.Client.KV().Put(&api.KVPair{Key: k, Value: []byte(`{}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func aclClient(t *testing.T, consul *testcluster.Consul, token string) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.WithAddress(consul.Addr), registry.WithToken(token), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func aclConsulClient(t *testing.T, consul *testcluster.Consul, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: consul.Addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isForbidden(err error) bool {
	var status api.StatusError
	return errors.As(err, &status) && status.Code == http.StatusForbidden
}

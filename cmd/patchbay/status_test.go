package main

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
)

// testRegistry is a client on its own prefix of consul, so that tests
// sharing one agent do not see each other; pass prefixFlag to patchbay.
func testRegistry(t *testing.T, consul *testcluster.Consul) (reg *registry.Client, prefixFlag string) {
	t.Helper()
	prefix := "t/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithPrefix(prefix), registry.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	return reg, "--prefix=" + prefix
}

func halt(t *testing.T, reg *registry.Client, fed, group string, h registry.Halt) {
	t.Helper()
	g, err := reg.Rollout(fed, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SetHalt(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

func halted(t *testing.T, reg *registry.Client, fed, group string) *registry.Halt {
	t.Helper()
	g, err := reg.Rollout(fed, group)
	if err != nil {
		t.Fatal(err)
	}
	h, err := g.Halted(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStatus(t *testing.T) {
	// Consul's records only: a NATS on this machine's default port (a
	// patchbay dev, say) would mark these listener-less nodes stale.
	t.Setenv("PATCHBAY_NATS_URL", "nats://127.0.0.1:1")
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	ctx := context.Background()

	t.Run("nothing recorded", func(t *testing.T) {
		_, prefix := testRegistry(t, consul)
		code, stdout, stderr := patchbay(t, "status", addr, prefix)
		if code != 0 || !strings.Contains(stdout, "no node has recorded a provision yet") || !strings.Contains(stdout, "no rollout group is halted") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		code, stdout, _ = patchbay(t, "status", addr, prefix, "--json")
		if code != 0 || strings.Join(strings.Fields(stdout), "") != `{"nodes":[],"halted":{}}` {
			t.Fatalf("--json with nothing recorded: exit %d\n%s", code, stdout)
		}
	})

	t.Run("nodes and halted rollouts", func(t *testing.T) {
		reg, prefix := testRegistry(t, consul)
		now := time.Now().UTC().Truncate(time.Second)
		statuses := []registry.Status{
			{Node: "web-1", Result: "ok", Revision: 42, At: now.Add(-90 * time.Second)},
			{Node: "web-2", Result: "failed", Revision: 41, At: now.Add(-3 * time.Hour), Message: "1 of 2 services failed",
				Details: map[string]string{"app-www": "template env: check failed", "lb": "reload failed:\nexit status 1"}},
			{Node: "web-3", Result: "skipped", At: now.Add(-5 * time.Minute), Message: "app-www waits for DATABASE_URL"},
		}
		for _, s := range statuses {
			if err := reg.PutStatus(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		halt(t, reg, "default", "www", registry.Halt{Node: "web-2", Reason: "health check of app-www failed", At: now.Add(-10 * time.Minute)})
		halt(t, reg, "seatgeek", "api", registry.Halt{Node: "api-7", Reason: "provision failed", At: now.Add(-time.Minute)})

		code, stdout, stderr := patchbay(t, "status", addr, prefix)
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range [][]string{ // words in order on one line
			{"NODE", "RESULT", "REVISION", "AGE", "MESSAGE"},
			{"web-1", "ok", "42", "1m"},
			{"web-2", "failed", "41", "3h", "1 of 2 services failed"},
			{"app-www: template env: check failed"},
			{"lb: reload failed: exit status 1"}, // a message keeps to its row
			{"web-3", "skipped", "-", "5m", "app-www waits for DATABASE_URL"},
			{"3 nodes: 1 failed, 1 ok, 1 skipped"},
			{"halted rollouts:"},
			{"default/www", "web-2", "health check of app-www failed", "10m ago (" + now.Add(-10*time.Minute).Format(time.RFC3339) + ")"},
			{"seatgeek/api", "api-7", "provision failed", "1m ago"},
			{"patchbay rollout resume GROUP --federation FEDERATION"},
		} {
			if !hasLine(stdout, want...) {
				t.Errorf("no line with %q in order", want)
			}
		}
		if t.Failed() {
			t.Fatalf("stdout:\n%s", stdout)
		}
		t.Logf("patchbay status:\n%s", stdout)

		code, stdout, _ = patchbay(t, "status", addr, prefix, "--json")
		var got statusReport
		if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
			t.Fatalf("--json: exit %d, %v\n%s", code, err, stdout)
		}
		if len(got.Nodes) != 3 || got.Nodes[1].Node != "web-2" || got.Nodes[1].Details["lb"] != "reload failed:\nexit status 1" || !got.Nodes[0].At.Equal(statuses[0].At) {
			t.Errorf("nodes = %+v", got.Nodes)
		}
		if keys := slices.Sorted(maps.Keys(got.Halted)); !slices.Equal(keys, []string{"default/www", "seatgeek/api"}) || got.Halted["seatgeek/api"].Node != "api-7" {
			t.Errorf("halted = %+v", got.Halted)
		}
	})

	t.Run("unreadable records", func(t *testing.T) {
		reg, prefix := testRegistry(t, consul)
		if err := reg.PutStatus(ctx, registry.Status{Node: "web-1", Result: "ok", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		p := strings.TrimPrefix(prefix, "--prefix=")
		for _, key := range []string{p + "status/web-9", p + "rollout/default/www/halt"} {
			if _, err := consul.Client.KV().Put(&api.KVPair{Key: key, Value: []byte("{oops")}, nil); err != nil {
				t.Fatal(err)
			}
		}
		code, stdout, stderr := patchbay(t, "status", addr, prefix)
		if code != 0 || !hasLine(stdout, "web-1", "ok") || !hasLine(stdout, "default/www", "-", "unreadable halt record") ||
			!strings.Contains(stderr, "warning: skipped unreadable "+p+"status/web-9") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})

	t.Run("unreachable consul", func(t *testing.T) {
		code, _, stderr := patchbay(t, "status", "--consul-addr=127.0.0.1:1", "--timeout=2s")
		if code != 2 || !strings.Contains(stderr, "consul unreachable at 127.0.0.1:1") || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
		}
	})
}

func TestRolloutResume(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsServer := testcluster.StartNATS(t)
	addr := "--consul-addr=" + consul.Addr
	natsFlag := "--nats-url=" + natsServer.URL
	closedNATS := "--nats-url=nats://127.0.0.1:" + strconv.Itoa(freePort(t))

	nc, err := nats.Connect(natsServer.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subscribe := func(t *testing.T, subject string) *nats.Subscription {
		t.Helper()
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		if err := nc.Flush(); err != nil { // the server knows the subscription before anyone publishes
			t.Fatal(err)
		}
		return sub
	}
	since := time.Now().Add(-time.Minute)

	tests := []struct {
		name     string
		fed      string // "" leaves the group not halted
		args     []string
		code     int
		stdout   string
		stderr   string
		announce bool
	}{
		{"halted", "default", []string{"rollout", "resume", "www", natsFlag}, 0,
			"resumed rollout group www (federation default), halted by web-2: health check failed", "", true},
		{"other federation", "seatgeek", []string{"rollout", "resume", "www", "--federation", "seatgeek", natsFlag}, 0,
			"resumed rollout group www (federation seatgeek)", "", true},
		{"not halted", "", []string{"rollout", "resume", "www", natsFlag}, 0,
			"rollout group www (federation default) was not halted; nothing to resume", "", false},
		{"nats unreachable", "default", []string{"rollout", "resume", "www", closedNATS}, 0,
			"resumed rollout group www", "the nodes of www apply at their next anti-entropy check", false},
		{"not a group name", "", []string{"rollout", "resume", "Bad_Group", natsFlag}, 1, "", "rollout group default/Bad_Group: both must be DNS labels", false},
		{"no group", "", []string{"rollout", "resume"}, 1, "", "missing GROUP", false},
		{"consul unreachable", "", []string{"rollout", "resume", "www", "--consul-addr=127.0.0.1:1", "--timeout=2s"}, 2, "", "consul unreachable at 127.0.0.1:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, prefix := testRegistry(t, consul)
			fed := tt.fed
			if fed != "" {
				halt(t, reg, fed, "www", registry.Halt{Node: "web-2", Reason: "health check failed", At: since})
			} else {
				fed = "default"
			}
			sub := subscribe(t, events.RolloutSubject(fed, "www"))
			code, stdout, stderr := patchbay(t, append([]string{addr, prefix}, tt.args...)...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if tt.stderr == "" && stderr != "" {
				t.Fatalf("unexpected stderr:\n%s", stderr)
			}
			if code == 0 {
				if h := halted(t, reg, fed, "www"); h != nil {
					t.Fatalf("still halted after resume: %+v", h)
				}
			}
			// The command flushed its publish before it returned, so NATS
			// has it; a marker published now reaches the subscriber after
			// it: no waiting for an event that may not come.
			if err := nc.Publish(sub.Subject, []byte("marker")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for len(got) == 0 || got[len(got)-1] != "marker" {
				msg, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("events on %s so far %q: %v", sub.Subject, got, err)
				}
				got = append(got, string(msg.Data))
			}
			if want := map[bool][]string{true: {"", "marker"}, false: {"marker"}}[tt.announce]; !slices.Equal(got, want) {
				t.Fatalf("events on %s: %q, want %q", sub.Subject, got, want)
			}
		})
	}
}

// hasLine reports whether a line of out contains words in this order.
func hasLine(out string, words ...string) bool {
	for line := range strings.Lines(out) {
		rest, ok := line, true
		for _, w := range words {
			i := strings.Index(rest, w)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(w):]
		}
		if ok {
			return true
		}
	}
	return false
}

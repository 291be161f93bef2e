package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// waitManifest renders VERSION into /etc/ID/env, checked by a command that
// fails on a node where a FAIL file lies beside the destination: one
// manifest, and a check that fails on one node only.
func waitManifest(id, version string) string {
	return fmt.Sprintf(`id: %s
environment: {VERSION: %q, DB_PASSWORD: "hunter2-%s"}
templates:
  env:
    source: builtin:env
    destination: /etc/%s/env
    check: [sh, -c, 'test ! -e "$(dirname "$0")/FAIL"', "{STAGED}"]
`, id, version, version, id)
}

const waitAllow = "allow: {commands: [[sh, -c, \"**\"]]}\n"

// startWaitNode starts `patchbay listen` on a node hosting service, and
// waits for its first run to apply version.
func startWaitNode(t *testing.T, c *listenCluster, name, service, version string) (*listenNode, *listenDaemon) {
	t.Helper()
	n := newListenNode(t, c, name, true)
	n.write(t, "  - service: "+service+"\n", waitAllow)
	d := startListen(t, "--config", n.path)
	testcluster.Eventually(t, 20*time.Second, name+" applied version "+version, func() bool {
		r, ok := controlStatus(t, n.control)
		return ok && idleAfterRun(r) && r.LastRun.Result == listener.ResultOK && n.hasVersion(service, version)
	})
	return n, d
}

func (n *listenNode) hasVersion(service, version string) bool {
	return strings.Contains(n.file("/etc/"+service+"/env"), fmt.Sprintf("VERSION='%s'", version))
}

// storedRevision is the revision of service's region-less binding.
func (c *listenCluster) storedRevision(t *testing.T, service string) uint64 {
	t.Helper()
	sb, err := c.reg.Binding(context.Background(), "default", service, "")
	if err != nil || sb == nil {
		t.Fatalf("binding of %s: %v %v", service, sb, err)
	}
	b, err := binding.DecodeBinding(sb.Key, sb.Value)
	if err != nil {
		t.Fatal(err)
	}
	return b.Revision
}

// waitResultLine is the last JSON line of a wait, its "result".
func waitResultLine(t *testing.T, stdout string) waitLine {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var l waitLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &l); err != nil || l.Type != "result" {
		t.Fatalf("last line is not a result (%v):\n%s", err, stdout)
	}
	return l
}

func waitNode(l waitLine, node string) (tracking.Node, bool) {
	for _, n := range l.Nodes {
		if n.Node == node {
			return n, true
		}
	}
	return tracking.Node{}, false
}

// TestPublishWait follows changes to real listeners: publish alone returns
// before a node applied; wait and publish --wait block until every node
// did, and name the nodes that did not.
func TestPublishWait(t *testing.T) {
	c := startListenCluster(t)

	t.Run("publish returns before a paused node applied; wait blocks until it did", func(t *testing.T) {
		c.publish(t, map[string]string{"tw-a": waitManifest("tw-a", "1")})
		fast, _ := startWaitNode(t, c, "twa-fast", "tw-a", "1")
		held, _ := startWaitNode(t, c, "twa-held", "tw-a", "1")
		if code, out, errOut := patchbay(t, "pause", "--control", held.control); code != 0 {
			t.Fatalf("pause: %d %s %s", code, out, errOut)
		}

		// Publish alone returns at once, whatever the nodes did.
		before := c.storedRevision(t, "tw-a")
		if code, _, errOut := patchbay(t, "publish", "--consul-addr="+c.consul.Addr, writeServices(t, map[string]string{"tw-a": waitManifest("tw-a", "2")})); code != 0 {
			t.Fatalf("publish: %d %s", code, errOut)
		}
		var rev uint64
		testcluster.Eventually(t, 10*time.Second, "the resolver's new revision", func() bool {
			rev = c.storedRevision(t, "tw-a")
			return rev > before
		})
		testcluster.Eventually(t, 10*time.Second, "twa-fast applied version 2", func() bool { return fast.hasVersion("tw-a", "2") })
		if !held.hasVersion("tw-a", "1") {
			t.Fatal("the paused node applied the change")
		}

		target := fmt.Sprintf("tw-a@%d", rev)
		args := append(c.flags(), "wait", target, "--json", "--wait-timeout=3s")
		code, stdout, errOut := patchbay(t, args...)
		if code != exitWaitTimeout {
			t.Fatalf("wait with a paused node: exit %d, want %d\n%s\n%s", code, exitWaitTimeout, stdout, errOut)
		}
		res := waitResultLine(t, stdout)
		if n, ok := waitNode(res, "twa-held"); !ok || n.State != tracking.Paused {
			t.Errorf("twa-held: %+v, want paused", n)
		}
		if n, ok := waitNode(res, "twa-fast"); !ok || n.State != tracking.Applied || n.Latency <= 0 {
			t.Errorf("twa-fast: %+v, want applied with a latency", n)
		}
		if !strings.Contains(errOut, "twa-held paused") || strings.Contains(errOut, "twa-fast") {
			t.Errorf("the error names the wrong nodes: %s", errOut)
		}

		if code, out, errOut := patchbay(t, "resume", "--control", held.control); code != 0 {
			t.Fatalf("resume: %d %s %s", code, out, errOut)
		}
		code, stdout, errOut = patchbay(t, append(c.flags(), "wait", target, "--wait-timeout=20s")...)
		if code != 0 || !held.hasVersion("tw-a", "2") {
			t.Fatalf("wait after resume: exit %d, version 2 on twa-held: %v\n%s\n%s", code, held.hasVersion("tw-a", "2"), stdout, errOut)
		}
		if !strings.Contains(stdout, "applied: 2/2 applied") {
			t.Errorf("no summary line:\n%s", stdout)
		}
		// The change reached both nodes by its event, which says when the
		// resolver wrote it: each observed change-to-file latency from there.
		for _, n := range []*listenNode{fast, held} {
			if got := changesObserved(t, n.control, "registry"); got < 1 {
				t.Errorf("%s: patchbay_listener_change_applied_seconds_count{from=\"registry\"} = %d, want at least 1", n.name, got)
			}
		}
	})

	t.Run("publish --wait names the failed, paused and killed nodes", func(t *testing.T) {
		c.publish(t, map[string]string{"tw-b": waitManifest("tw-b", "1")})
		ok, _ := startWaitNode(t, c, "twb-ok", "tw-b", "1")
		bad, _ := startWaitNode(t, c, "twb-check", "tw-b", "1")
		held, _ := startWaitNode(t, c, "twb-paused", "tw-b", "1")
		_, killed := startWaitNode(t, c, "twb-killed", "tw-b", "1")

		// All nodes well: publish --wait returns once every node applied.
		code, stdout, errOut := patchbay(t, append(c.flags(), "publish", "--wait", "--wait-timeout=30s", writeServices(t, map[string]string{"tw-b": waitManifest("tw-b", "2")}))...)
		if code != 0 {
			t.Fatalf("publish --wait: exit %d\n%s\n%s", code, stdout, errOut)
		}
		t.Logf("publish --wait:\n%s", stdout)
		for _, n := range []*listenNode{ok, bad, held} {
			if !n.hasVersion("tw-b", "2") {
				t.Errorf("publish --wait returned before %s applied", n.name)
			}
		}

		if err := os.WriteFile(filepath.Join(bad.root, "etc/tw-b/FAIL"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := patchbay(t, "pause", "--control", held.control); code != 0 {
			t.Fatalf("pause: %d %s %s", code, out, errOut)
		}
		killed.signal(t, syscall.SIGKILL)
		killed.wait(t, 10*time.Second)

		code, stdout, errOut = patchbay(t, append(c.flags(), "publish", "--wait", "--json", "--wait-timeout=8s", writeServices(t, map[string]string{"tw-b": waitManifest("tw-b", "3")}))...)
		if code != exitNotApplied {
			t.Fatalf("publish --wait with failing nodes: exit %d, want %d\n%s\n%s", code, exitNotApplied, stdout, errOut)
		}
		res := waitResultLine(t, stdout)
		want := map[string]string{"twb-ok": tracking.Applied, "twb-check": tracking.Failed, "twb-paused": tracking.Paused, "twb-killed": tracking.Stale}
		for node, state := range want {
			if n, found := waitNode(res, node); !found || n.State != state {
				t.Errorf("%s: %+v, want %s", node, n, state)
			}
			if state != tracking.Applied && !strings.Contains(errOut, node+" "+state) {
				t.Errorf("the error does not name %s %s: %s", node, state, errOut)
			}
		}
		if n, _ := waitNode(res, "twb-check"); !strings.Contains(n.Reason, "check") {
			t.Errorf("twb-check's reason does not say its check failed: %q", n.Reason)
		}
		if !ok.hasVersion("tw-b", "3") || !bad.hasVersion("tw-b", "2") {
			t.Errorf("versions after the wait: ok %q, check %q", ok.file("/etc/tw-b/env"), bad.file("/etc/tw-b/env"))
		}
		if strings.Contains(stdout+errOut, "hunter2") {
			t.Errorf("the wait's output reveals a secret value:\n%s\n%s", stdout, errOut)
		}
	})

	t.Run("a halted rollout group is reported as such", func(t *testing.T) {
		doc := func(v string) string { return waitManifest("tw-d", v) + "rollout: {group: twd}\n" }
		c.publish(t, map[string]string{"tw-d": doc("1")})
		n, _ := startWaitNode(t, c, "twd-1", "tw-d", "1")
		g, err := c.reg.Rollout("default", "twd")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetHalt(context.Background(), registry.Halt{Node: "twd-other", Reason: "check failed on twd-other"}); err != nil {
			t.Fatal(err)
		}
		code, stdout, errOut := patchbay(t, append(c.flags(), "publish", "--wait", "--json", "--wait-timeout=20s", writeServices(t, map[string]string{"tw-d": doc("2")}))...)
		if code != exitNotApplied || !strings.Contains(errOut, "twd-1 halted") || !strings.Contains(errOut, "rollout halted") {
			t.Fatalf("publish --wait into a halted group: exit %d, want %d naming twd-1 halted\n%s\n%s", code, exitNotApplied, stdout, errOut)
		}
		if w, _ := waitNode(waitResultLine(t, stdout), "twd-1"); w.State != tracking.Halted || n.hasVersion("tw-d", "2") {
			t.Errorf("twd-1: %+v, version 2 applied: %v", w, n.hasVersion("tw-d", "2"))
		}
		if code, out, errOut := patchbay(t, append(c.flags(), "rollout", "resume", "twd")...); code != 0 {
			t.Fatalf("rollout resume: %d %s %s", code, out, errOut)
		}
		rev := c.storedRevision(t, "tw-d")
		if code, out, errOut := patchbay(t, append(c.flags(), "wait", fmt.Sprintf("tw-d@%d", rev), "--wait-timeout=20s")...); code != 0 || !n.hasVersion("tw-d", "2") {
			t.Fatalf("wait after resume: exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("datastore set --wait follows a value to its consumers", func(t *testing.T) {
		c.publish(t, map[string]string{"tw-c": "id: tw-c\nrequires: {UPSTREAM_URL: \"{TWC_UPSTREAM_URL}\"}\ntemplates:\n  env: {source: \"builtin:env\", destination: /etc/tw-c/env}\n"})
		if code, _, errOut := patchbay(t, "datastore", "set", "--consul-addr="+c.consul.Addr, "TWC_UPSTREAM_URL", "http://one.internal"); code != 0 {
			t.Fatalf("datastore set: %d %s", code, errOut)
		}
		n := newListenNode(t, c, "twc-1", true)
		n.write(t, "  - service: tw-c\n", "")
		startListen(t, "--config", n.path)
		testcluster.Eventually(t, 20*time.Second, "the first value rendered", func() bool {
			return strings.Contains(n.file("/etc/tw-c/env"), "one.internal")
		})
		code, stdout, errOut := patchbay(t, append(c.flags(), "datastore", "set", "TWC_UPSTREAM_URL", "http://two.internal", "--wait", "--wait-timeout=30s")...)
		if code != 0 || !strings.Contains(n.file("/etc/tw-c/env"), "two.internal") {
			t.Fatalf("datastore set --wait: exit %d, file %q\n%s\n%s", code, n.file("/etc/tw-c/env"), stdout, errOut)
		}
		if !strings.Contains(stdout, "waiting for tw-c@") {
			t.Errorf("no target named:\n%s", stdout)
		}
	})
}

// changesObserved is a node's count of change-to-file latencies observed
// from start ("registry" or "received"); -1 when the metric is missing.
func changesObserved(t *testing.T, addr, from string) int {
	t.Helper()
	code, body := controlGet(addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	m := regexp.MustCompile(`(?m)^patchbay_listener_change_applied_seconds_count\{from="` + from + `"\} (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

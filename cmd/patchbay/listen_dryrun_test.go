package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// dryRunManifest renders VERSION into an env file checked, reloaded,
// provisioned and tested with commands that leave a line in marks.
// dryRunAllow lets the dry-run manifests' sh commands run on the node, and
// dr-h write dr-a's file.
const dryRunAllow = "allow: {commands: [[sh, \"**\"]], destinations: [/etc/dr-a/*]}\n"

func dryRunManifest(marks, version string) string {
	return fmt.Sprintf(`id: dr-a
environment: {VERSION: %q}
provision: {command: [sh, -c, "echo provisioned >> %s/provisions"]}
tests:
  - {name: smoke, command: [sh, -c, "echo tested $0 >> %s/tests", "{HOST}:{PORT}"]}
templates:
  env:
    source: builtin:env
    destination: /etc/dr-a/env
    check: [sh, -c, "! grep -q BROKEN \"$0\"", "{STAGED}"]
    reload: [sh, -c, "echo reloaded >> %s/reloads"]
`, version, marks, marks, marks)
}

// nodeState is everything a dry run must leave alone: the node's files,
// the commands' marks, its status in Consul.
type nodeState struct {
	files  map[string]string // path under root and marks → content and mtime
	status registry.Status
}

func snapshotNode(t *testing.T, c *listenCluster, n *listenNode, marks string) nodeState {
	t.Helper()
	s := nodeState{files: map[string]string{}}
	for _, dir := range []string{n.root, marks} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(path)
			s.files[path] = fmt.Sprintf("%s@%s %v", b, info.ModTime().Format(time.RFC3339Nano), info.Mode())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	statuses, _, err := c.reg.Statuses(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range statuses {
		if st.Node == n.name {
			s.status = st
		}
	}
	return s
}

// TestListenDryRun: listen --once --dry-run prints the diff and the
// commands a run would run, against a real Consul, NATS and resolver, and
// changes nothing on disk nor in Consul.
func TestListenDryRun(t *testing.T) {
	c := startListenCluster(t)
	marks := t.TempDir()
	c.publish(t, map[string]string{"dr-a": dryRunManifest(marks, "1")})
	n := newListenNode(t, c, "dry-node", false)
	port := freePort(t)
	n.write(t, fmt.Sprintf("  - service: dr-a\n    port: %d\n", port), dryRunAllow)
	listen := func(args ...string) (int, string, string) {
		t.Helper()
		return patchbay(t, append(append([]string{"listen", "--config", n.path}, args...), c.flags()...)...)
	}
	if code, _, stderr := listen("--once"); code != 0 {
		t.Fatalf("listen --once: exit %d: %s", code, stderr)
	}
	if got := n.file("/etc/dr-a/env"); !strings.Contains(got, "export VERSION='1'") {
		t.Fatalf("first run installed:\n%s", got)
	}
	c.publish(t, map[string]string{"dr-a": dryRunManifest(marks, "2")})
	before := snapshotNode(t, c, n, marks)
	if before.status.Node == "" {
		t.Fatal("the first run left no status in Consul")
	}

	code, stdout, stderr := listen("--once", "--dry-run", "--diff")
	if code != 0 {
		t.Fatalf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("listen --once --dry-run --diff:\n%s", stdout)
	dest := filepath.Join(n.root, "etc/dr-a/env")
	for _, want := range []string{
		"dry run on dry-node (federation default, region \"\"): the run would be ok; nothing was changed\n",
		"dr-a: ok (revision ",
		"  file " + dest + ": would change\n",
		"    check sh -c ! grep -q BROKEN \"$0\" {STAGED}: passes\n",
		"    reload: sh -c echo reloaded >> " + marks + "/reloads\n",
		"    --- " + dest + "\n",
		"    -export VERSION='1'\n",
		"    +export VERSION='2'\n",
		"  provision would run: sh -c echo provisioned >> " + marks + "/provisions (files change)\n",
		"  test smoke would run: sh -c echo tested $0 >> " + marks + "/tests 127.0.0.1:" + strconv.Itoa(port) + " (after the apply)\n",
		"reload would run once: sh -c echo reloaded >> " + marks + "/reloads\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	assertUnchanged(t, before, snapshotNode(t, c, n, marks))

	code, stdout, stderr = listen("--once", "--dry-run", "--diff", "--json")
	if code != 0 {
		t.Fatalf("dry run --json: exit %d: %s", code, stderr)
	}
	var r listener.DryRunReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not a dry-run report: %v\n%s", err, stdout)
	}
	if r.Result != listener.ResultOK || len(r.Services) != 1 || len(r.Reloads) != 1 {
		t.Fatalf("report %+v", r)
	}
	s := r.Services[0]
	if len(s.Templates) != 1 || !s.Templates[0].Changed || !strings.Contains(s.Templates[0].Diff, "+export VERSION='2'") ||
		s.Templates[0].Check == nil || !s.Templates[0].Check.Passed || s.Provision == nil || len(s.Tests) != 1 || s.Tests[0].Name != "smoke" {
		t.Errorf("service %+v", s)
	}
	code, stdout, _ = listen("--once", "--dry-run", "--json")
	if code != 0 || strings.Contains(stdout, `"diff"`) {
		t.Errorf("--json without --diff: exit %d, diffs in the output:\n%s", code, stdout)
	}
	assertUnchanged(t, before, snapshotNode(t, c, n, marks))

	// A check that would fail: exit 1, and still nothing changes.
	c.publish(t, map[string]string{"dr-a": dryRunManifest(marks, "BROKEN")})
	before = snapshotNode(t, c, n, marks)
	code, stdout, stderr = listen("--once", "--dry-run")
	if code != exitUser || !strings.Contains(stdout, "the run would be failed") || !strings.Contains(stdout, ": fails, nothing would be installed: ") {
		t.Errorf("failing check: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, exitUser, stdout, stderr)
	}
	if strings.Contains(stdout, "provision would run") {
		t.Errorf("a failing service would provision:\n%s", stdout)
	}
	assertUnchanged(t, before, snapshotNode(t, c, n, marks))
	if !c.gone(t, "dr-a") {
		t.Errorf("a dry run registered an instance: %+v", liveInstances(t, c.reg, "dr-a"))
	}

	if code, _, stderr := listen("--dry-run"); code != exitUser || !strings.Contains(stderr, "--dry-run and --diff go with --once") {
		t.Errorf("--dry-run without --once: exit %d: %s", code, stderr)
	}
}

func assertUnchanged(t *testing.T, before, after nodeState) {
	t.Helper()
	for _, path := range slices.Sorted(func(yield func(string) bool) {
		for p := range before.files {
			if !yield(p) {
				return
			}
		}
		for p := range after.files {
			if _, ok := before.files[p]; !ok && !yield(p) {
				return
			}
		}
	}) {
		if before.files[path] != after.files[path] {
			t.Errorf("%s changed:\nbefore: %q\nafter:  %q", path, before.files[path], after.files[path])
		}
	}
	if !before.status.At.Equal(after.status.At) || before.status.Result != after.status.Result || before.status.Message != after.status.Message {
		t.Errorf("status in Consul changed: %+v → %+v", before.status, after.status)
	}
}

// TestListenDryRunHalted: a service whose rollout group is halted would
// stage, not apply; the dry run says so, runs no command and leaves the
// halt flag alone.
func TestListenDryRunHalted(t *testing.T) {
	c := startListenCluster(t)
	marks := t.TempDir()
	c.publish(t, map[string]string{"dr-h": strings.Replace(dryRunManifest(marks, "1"), "id: dr-a", "id: dr-h\nrollout: {group: drh}", 1)})
	group, err := c.reg.Rollout("default", "drh")
	if err != nil {
		t.Fatal(err)
	}
	if err := group.SetHalt(t.Context(), registry.Halt{Node: "other-node", Reason: "health check failing", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n := newListenNode(t, c, "dry-halted", false)
	n.write(t, "  - service: dr-h\n", dryRunAllow)
	code, stdout, stderr := patchbay(t, append([]string{"listen", "--config", n.path, "--once", "--dry-run", "--json"}, c.flags()...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r listener.DryRunReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	s := r.Services[0]
	if r.Result != listener.ResultHalted || s.Result != listener.ResultHalted || !strings.Contains(s.Reason, "halted by other-node: health check failing") ||
		s.Provision != nil || len(s.Tests) != 0 || s.RolloutGroup != "drh" || len(s.Templates) != 1 || !s.Templates[0].Changed {
		t.Errorf("report %+v, service %+v: want halted naming other-node, the file staged, no command", r, s)
	}
	if h, err := group.Halted(t.Context()); err != nil || h == nil || h.Node != "other-node" {
		t.Errorf("halt flag after the dry run: %+v, %v", h, err)
	}
	if n.file("/etc/dr-h/env") != "" {
		t.Error("a dry run installed the file")
	}
	if entries, _ := os.ReadDir(marks); len(entries) != 0 {
		t.Errorf("commands ran: %v", entries)
	}
}

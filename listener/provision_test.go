package listener_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolverd"
)

// The provision run against a real Consul, NATS and resolver loop: one
// cluster for the whole test, one node (and its own services) per subtest.
// Every subtest's services and nodes have names of their own, so the
// subtests cannot see each other's bindings, files or statuses.

const (
	provQueue = "{quiet: 100ms, max_wait: 1s, min_interval: 100ms, burst: 10}"
	provRetry = "{initial: 500ms, max: 2s}"
	// provSettle bounds every wait for the cluster to carry a change to a node.
	provSettle = 20 * time.Second
)

// pnode is a listener of a provision test, keeping every run's report
// and log record.
type pnode struct {
	*node
	dir     string // listener.yaml, state_dir and root live here
	stop    func() // stops the listener and waits for it
	mu      sync.Mutex
	reports []listener.RunReport
	logs    []string
}

// logged reports whether some log record contains every one of parts.
func (n *pnode) logged(parts ...string) bool { return n.loggedSince(0, parts...) }

// logMark is where the next log record will be; loggedSince(mark) reads
// only the records after it.
func (n *pnode) logMark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.logs)
}

// loggedSince reports whether some record from mark on contains every one
// of parts.
func (n *pnode) loggedSince(mark int, parts ...string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.logs[mark:] {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// logRecorder keeps each record as "message key=value ..." in its node,
// and passes it on to next.
type logRecorder struct {
	n     *pnode
	next  slog.Handler
	attrs []slog.Attr
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%s", a.Key, a.Value); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.n.mu.Lock()
	h.n.logs = append(h.n.logs, b.String())
	h.n.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{n: h.n, next: h.next.WithAttrs(as), attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{n: h.n, next: h.next.WithGroup(name), attrs: h.attrs}
}

func (n *pnode) ran(r listener.RunReport) {
	n.mu.Lock()
	n.reports = append(n.reports, r)
	n.mu.Unlock()
	n.node.ran(r)
}

// find returns the first report satisfying ok, if any.
func (n *pnode) find(ok func(listener.RunReport) bool) (listener.RunReport, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.reports {
		if ok(r) {
			return r, true
		}
	}
	return listener.RunReport{}, false
}

// settled reports whether the queue is idle and the last run's result is
// result.
func (n *pnode) settled(result string) bool {
	r := n.last.Load()
	return r != nil && r.Result == result && idle(n.node)
}

// provNodeSpec is the part of a test node's listener.yaml that varies.
type provNodeSpec struct {
	services    string // the services: list, indented
	antiEntropy string // default 2s
	noBus       bool   // no NATS: anti-entropy is the only trigger
	dir         string // a stopped node's dir, to restart it; default a new one
	// allow is listener.yaml's allow (and control) lines; default: every
	// command and source, for the tests' sh commands, and no control.
	allow string
}

// startProvNode is startListener with the provision tests' fast queue and
// retry, stopped at the end of t (a subtest) rather than of the cluster's
// test.
func (c *cluster) startProvNode(t *testing.T, name string, spec provNodeSpec) *pnode {
	t.Helper()
	dir := spec.dir
	if dir == "" {
		dir = t.TempDir()
	}
	n := &pnode{node: &node{name: name, root: filepath.Join(dir, "root")}, dir: dir}
	ae := provOr(spec.antiEntropy, "2s")
	doc := fmt.Sprintf(`node: %s
address: 127.0.0.1
root: %s
state_dir: %s
anti_entropy: %s
shutdown_timeout: 5s
queue: %s
retry: %s
%s
services:
%s`, name, n.root, filepath.Join(dir, "state"), ae, provQueue, provRetry,
		provOr(spec.allow, "control: \"off\"\n"+testAllowAll), spec.services)
	cfgPath := filepath.Join(dir, "listener.yaml")
	if err := os.WriteFile(cfgPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := listener.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := []listener.Option{
		listener.WithLogger(slog.New(&logRecorder{n: n, next: testLogger(t, name).Handler()})),
		listener.WithOwnerOptions(registry.WithOwnerTTL(2 * time.Second)),
		listener.WithRunHook(n.ran),
	}
	if !spec.noBus {
		opts = append(opts, listener.WithBus(c.nc))
	}
	n.l, err = listener.New(cfg, c.reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.l.Run(ctx) }()
	n.stop = func() { cancel(); <-done }
	t.Cleanup(n.stop)
	return n
}

func provOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// startProvResolver is startResolver with the short debounce of these
// tests, stopped at the end of t.
func (c *cluster) startProvResolver(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	loop := resolverd.NewLoop(c.reg, c.nc, resolverd.WithDebounce(100*time.Millisecond, time.Second), resolverd.WithLogger(testLogger(t, "resolver")))
	done := make(chan struct{})
	go func() { defer close(done); _ = loop.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// provPublish is cluster.publish failing t (a subtest) rather than the
// cluster's test.
func (c *cluster) provPublish(t *testing.T, doc string) {
	t.Helper()
	m, err := manifest.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if _, err := c.reg.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) provSetDatastore(t *testing.T, key, value string) {
	t.Helper()
	if _, err := c.reg.SetDatastore(t.Context(), "default", key, value); err != nil {
		t.Fatal(err)
	}
}

// provStatus is the node's status in Consul; ok is false when there is none.
func (c *cluster) provStatus(t *testing.T, nodeName string) (registry.Status, bool) {
	t.Helper()
	statuses, _, err := c.reg.Statuses(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		if s.Node == nodeName {
			return s, true
		}
	}
	return registry.Status{}, false
}

// provWaitStatus waits until the node's status in Consul satisfies ok:
// the run hook is called before the status is written.
func (c *cluster) provWaitStatus(t *testing.T, nodeName, want string, ok func(registry.Status) bool) {
	t.Helper()
	var last registry.Status
	defer func() {
		if t.Failed() {
			t.Logf("last status of %s in Consul: %+v", nodeName, last)
		}
	}()
	testcluster.Eventually(t, provSettle, "status of "+nodeName+" in Consul "+want, func() bool {
		st, found := c.provStatus(t, nodeName)
		last = st
		return found && ok(st)
	})
}

// provBinding is the resolver's stored binding of service; nil before the
// resolver wrote it.
func (c *cluster) provBinding(t *testing.T, service string) *binding.Binding {
	t.Helper()
	sb, err := c.reg.Binding(t.Context(), "default", service, "")
	if err != nil {
		t.Fatal(err)
	}
	if sb == nil {
		return nil
	}
	var b binding.Binding
	if err := json.Unmarshal(sb.Value, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// provWaitBound waits until the resolver has bound every service, with
// value for key when key is not "".
func (c *cluster) provWaitBound(t *testing.T, key, value string, services ...string) {
	t.Helper()
	testcluster.Eventually(t, provSettle, fmt.Sprintf("%v bound", services), func() bool {
		for _, s := range services {
			b := c.provBinding(t, s)
			if b == nil || key != "" && b.Vars[key].Value != value {
				return false
			}
		}
		return true
	})
}

// provChangeInOneRun sets key to value with n paused, and resumes it only
// once every one of services is bound to it and n has heard each binding's
// event: Consul holding a binding does not mean its event has reached the
// node, and a run resumed before would apply the change in two.
func (c *cluster) provChangeInOneRun(t *testing.T, n *pnode, key, value string, services ...string) {
	t.Helper()
	n.l.Pause()
	mark := n.logMark()
	c.provSetDatastore(t, key, value)
	c.provWaitBound(t, key, value, services...)
	testcluster.Eventually(t, provSettle, fmt.Sprintf("%s heard the events of %v", n.name, services), func() bool {
		for _, s := range services {
			if !n.loggedSince(mark, "provision triggered", "reason=binding of "+s+" changed") {
				return false
			}
		}
		return true
	})
	n.l.Resume()
}

// provArgv writes a command as a YAML (JSON) flow sequence.
func provArgv(args ...string) string {
	b, _ := json.Marshal(args)
	return string(b)
}

// provSh is provArgv for sh -c script.
func provSh(script string) string { return provArgv("sh", "-c", script) }

// provQuote writes a string as a YAML (JSON) scalar.
func provQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func provRead(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func provService(r listener.RunReport, service string) *listener.ServiceRun {
	for i := range r.Services {
		if r.Services[i].Service == service {
			return &r.Services[i]
		}
	}
	return nil
}

func provTemplate(s *listener.ServiceRun, name string) *listener.TemplateRun {
	if s == nil {
		return nil
	}
	for i := range s.Templates {
		if s.Templates[i].Name == name {
			return &s.Templates[i]
		}
	}
	return nil
}

// provStamps reads a file of `date +%s%N` lines.
func provStamps(t *testing.T, path string) []time.Time {
	t.Helper()
	var out []time.Time
	for line := range strings.FieldsSeq(provRead(path)) {
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q is not a timestamp: %v", path, line, err)
		}
		out = append(out, time.Unix(0, ns))
	}
	return out
}

// TestProvisionRun checks the rules of a provision run: skip on unresolved
// requirements, check before install, one reload per distinct command,
// the provision command's environment, override and timeout, after:
// ordering and parallel steps, retries with backoff, no provision without
// a change, manifest changes and anti-entropy.
func TestProvisionRun(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)

	t.Run("unresolved requirement skips the service and keeps its files", func(t *testing.T) {
		out := t.TempDir()
		c.provSetDatastore(t, "SK_DB", "postgres://one")
		c.provPublish(t, fmt.Sprintf(`id: sk-app
requires:
  SK_DB: "{SK_DB}"
  SK_OPT: {key: SK_OPT, optional: true}
provision: {command: %s}
templates:
  env: {contents: %s, destination: /etc/sk/env}`,
			provSh("echo run >> "+out+"/provisions"), provQuote(`DB={{ binding "SK_DB" }}`+"\n"+`OPT=[{{ binding "SK_OPT" }}]`+"\n")))
		n := c.startProvNode(t, "sk-node", provNodeSpec{services: "  - service: sk-app\n"})
		testcluster.Eventually(t, provSettle, "sk-app renders SK_DB", func() bool {
			return n.file("/etc/sk/env") == "DB=postgres://one\nOPT=[]\n" && n.settled(listener.ResultOK)
		})
		if got := lines(provRead(out + "/provisions")); got != 1 {
			t.Fatalf("provision ran %d times for the first binding, want 1", got)
		}

		if err := c.reg.DeleteDatastore(t.Context(), "default", "SK_DB"); err != nil {
			t.Fatal(err)
		}
		testcluster.Eventually(t, provSettle, "a run skips sk-app", func() bool { return n.settled(listener.ResultSkipped) })
		if got := n.file("/etc/sk/env"); got != "DB=postgres://one\nOPT=[]\n" {
			t.Errorf("the installed file is %q, want its last good version kept", got)
		}
		if got := lines(provRead(out + "/provisions")); got != 1 {
			t.Errorf("provision ran %d times, want 1: a skipped service is not provisioned", got)
		}
		r := n.last.Load()
		s := provService(*r, "sk-app")
		if s == nil || s.Result != listener.ResultSkipped || !strings.Contains(s.Reason, "SK_DB unresolved") {
			t.Errorf("service report %+v, want skipped naming SK_DB unresolved", s)
		}
		if !strings.Contains(r.Message, "SK_DB unresolved") {
			t.Errorf("run message %q does not name SK_DB", r.Message)
		}
		if s != nil && s.Provision != nil {
			t.Errorf("a skipped service ran its provision command: %+v", s.Provision)
		}
		if rep := n.l.Report(); rep.LastRun == nil || rep.LastRun.Result != listener.ResultSkipped || !strings.Contains(rep.LastRun.Message, "SK_DB") {
			t.Errorf("Report().LastRun = %+v, want skipped naming SK_DB", rep.LastRun)
		}
		st, ok := c.provStatus(t, "sk-node")
		if !ok || st.Result != listener.ResultSkipped || !strings.Contains(st.Message, "SK_DB unresolved") || !strings.Contains(st.Details["sk-app"], "SK_DB unresolved") {
			t.Errorf("status in Consul %+v, want skipped naming SK_DB unresolved", st)
		}

		// Once the requirement resolves again, the service is applied.
		c.provSetDatastore(t, "SK_DB", "postgres://two")
		testcluster.Eventually(t, provSettle, "sk-app renders the new SK_DB", func() bool {
			return n.file("/etc/sk/env") == "DB=postgres://two\nOPT=[]\n" && n.settled(listener.ResultOK)
		})
		if got := lines(provRead(out + "/provisions")); got != 2 {
			t.Errorf("provision ran %d times, want 2", got)
		}
		if st, _ := c.provStatus(t, "sk-node"); st.Result != listener.ResultOK {
			t.Errorf("status in Consul %+v, want ok", st)
		}
	})

	t.Run("failing check installs nothing and stops no other template", func(t *testing.T) {
		c.provSetDatastore(t, "CK_V", "fine")
		tmpl := provQuote(`v={{ binding "CK_V" }}` + "\n")
		c.provPublish(t, fmt.Sprintf(`id: ck-a
requires: {CK_V: "{CK_V}"}
templates:
  plain: {contents: %s, destination: /etc/ck/plain}
  checked: {contents: %s, destination: /etc/ck/checked, check: %s}`,
			tmpl, tmpl, provArgv("sh", "-c", `! grep -q BROKEN "$1"`, "check", manifest.StagedPlaceholder)))
		c.provPublish(t, fmt.Sprintf(`id: ck-b
requires: {CK_V: "{CK_V}"}
templates:
  other: {contents: %s, destination: /etc/ck/other}`, tmpl))
		n := c.startProvNode(t, "ck-node", provNodeSpec{services: "  - service: ck-a\n  - service: ck-b\n"})
		files := []string{"/etc/ck/plain", "/etc/ck/checked", "/etc/ck/other"}
		testcluster.Eventually(t, provSettle, "three files hold v=fine", func() bool {
			for _, f := range files {
				if n.file(f) != "v=fine\n" {
					return false
				}
			}
			return n.settled(listener.ResultOK)
		})

		// Paused until both bindings hold the change: one run applies it.
		c.provChangeInOneRun(t, n, "CK_V", "BROKEN", "ck-a", "ck-b")
		testcluster.Eventually(t, provSettle, "the unchecked files hold v=BROKEN after a failed run", func() bool {
			r := n.last.Load()
			return n.file("/etc/ck/plain") == "v=BROKEN\n" && n.file("/etc/ck/other") == "v=BROKEN\n" && r != nil && r.Result == listener.ResultFailed
		})
		if got := n.file("/etc/ck/checked"); got != "v=fine\n" {
			t.Errorf("checked file is %q, want the old v=fine kept", got)
		}
		// The run that installed the change (later runs are retries).
		r, ok := n.find(func(r listener.RunReport) bool { return r.Result == listener.ResultFailed })
		if !ok {
			t.Fatal("no failed run recorded")
		}
		a, b := provService(r, "ck-a"), provService(r, "ck-b")
		if a == nil || a.Result != listener.ResultFailed || !strings.Contains(a.Reason, "template checked") {
			t.Errorf("ck-a: %+v, want failed naming template checked", a)
		}
		if tr := provTemplate(a, "checked"); tr == nil || tr.Changed || !strings.Contains(tr.Error, "check") {
			t.Errorf("template checked: %+v, want unchanged with a check error", tr)
		}
		if tr := provTemplate(a, "plain"); tr == nil || !tr.Changed || tr.Error != "" {
			t.Errorf("template plain: %+v, want installed", tr)
		}
		if b == nil || b.Result != listener.ResultOK {
			t.Errorf("ck-b: %+v, want ok", b)
		}
		if tr := provTemplate(b, "other"); tr == nil || !tr.Changed {
			t.Errorf("template other: %+v, want installed", tr)
		}
		if !strings.Contains(r.Message, "ck-a failed") || strings.Contains(r.Message, "ck-b") {
			t.Errorf("run message %q, want ck-a's failure only", r.Message)
		}
		c.provWaitStatus(t, "ck-node", "failed listing template checked of ck-a, ck-b ok", func(st registry.Status) bool {
			return st.Result == listener.ResultFailed && strings.Contains(st.Details["ck-a"], "template checked") && strings.HasPrefix(st.Details["ck-b"], "ok")
		})
		// Staging happens beside the destination; a failed check leaves
		// no staged file behind. Retries of the failed run stage again, so
		// the count is taken with none running.
		n.l.Pause()
		testcluster.Eventually(t, provSettle, "paused with no run in progress", func() bool {
			q := n.l.Report().Queue
			return q.Paused && !q.Running
		})
		staged, _ := filepath.Glob(filepath.Join(n.root, "etc/ck/.*"))
		if len(staged) != 0 {
			t.Errorf("staged files left behind: %v", staged)
		}
	})

	t.Run("one reload per distinct command, none and no provision without change", func(t *testing.T) {
		out := t.TempDir()
		reloadX := provSh("echo x >> " + out + "/reload-x")
		reloadY := provSh("echo y >> " + out + "/reload-y")
		tmpl := provQuote(`v={{ binding "RL_V" }}` + "\n")
		c.provSetDatastore(t, "RL_V", "1")
		c.provPublish(t, fmt.Sprintf(`id: rl-a
requires: {RL_V: "{RL_V}"}
provision: {command: %s}
templates:
  one: {contents: %s, destination: /etc/rl/one, reload: %s}
  two: {contents: %s, destination: /etc/rl/two, reload: %s}`,
			provSh("echo p >> "+out+"/provisions"), tmpl, reloadX, tmpl, reloadX))
		c.provPublish(t, fmt.Sprintf(`id: rl-b
requires: {RL_V: "{RL_V}"}
templates:
  three: {contents: %s, destination: /etc/rl/three, reload: %s}
  four: {contents: %s, destination: /etc/rl/four, reload: %s}`,
			tmpl, reloadX, tmpl, reloadY))
		// Bound before the node starts, so that its first run installs all
		// four files.
		c.provWaitBound(t, "RL_V", "1", "rl-a", "rl-b")
		n := c.startProvNode(t, "rl-node", provNodeSpec{services: "  - service: rl-a\n  - service: rl-b\n"})
		holds := func(v string) func() bool {
			return func() bool {
				for _, f := range []string{"one", "two", "three", "four"} {
					if n.file("/etc/rl/"+f) != "v="+v+"\n" {
						return false
					}
				}
				return n.settled(listener.ResultOK)
			}
		}
		counts := func() [3]int {
			return [3]int{lines(provRead(out + "/reload-x")), lines(provRead(out + "/reload-y")), lines(provRead(out + "/provisions"))}
		}
		testcluster.Eventually(t, provSettle, "four files hold v=1", holds("1"))
		if got := counts(); got != [3]int{1, 1, 1} {
			t.Fatalf("reload x, reload y, provision ran %v times for the first install, want once each", got)
		}

		// Paused until both bindings hold the change: one run applies it.
		c.provChangeInOneRun(t, n, "RL_V", "2", "rl-a", "rl-b")
		testcluster.Eventually(t, provSettle, "four files hold v=2", holds("2"))
		if got := counts(); got != [3]int{2, 2, 2} {
			t.Errorf("after one run changing four files: reload x, reload y, provision ran %v times in all, want twice each", got)
		}
		r, ok := n.find(func(r listener.RunReport) bool {
			tr := provTemplate(provService(r, "rl-b"), "three")
			return tr != nil && tr.Changed && r.Services[0].Revision == n.last.Load().Services[0].Revision
		})
		if !ok {
			t.Fatal("no run installed v=2")
		}
		for _, s := range r.Services {
			for _, tr := range s.Templates {
				if !tr.Changed {
					t.Errorf("%s/%s not changed by the run installing v=2", s.Service, tr.Name)
				}
			}
		}

		before := n.runs.Load()
		n.l.Provision()
		testcluster.Eventually(t, provSettle, "a triggered run finishes", func() bool {
			return n.runs.Load() > before && n.settled(listener.ResultOK)
		})
		if got := counts(); got != [3]int{2, 2, 2} {
			t.Errorf("a run with nothing changed: reload x, reload y, provision ran %v times in all, want still twice each", got)
		}
		last := n.last.Load()
		for _, s := range last.Services {
			if s.Provision != nil {
				t.Errorf("%s: provision ran with unchanged bindings: %+v", s.Service, s.Provision)
			}
			for _, tr := range s.Templates {
				if tr.Changed {
					t.Errorf("%s/%s changed by a run with unchanged bindings", s.Service, tr.Name)
				}
			}
		}
	})

	t.Run("provision command", func(t *testing.T) {
		out := t.TempDir()
		c.provSetDatastore(t, "PE_DB", "postgres://pe")
		tests := []struct {
			name     string
			id       string // the service's, its node is id-node
			manifest string // after id:
			node     string // after - service: ID
			want     string // the run's result
			check    func(t *testing.T, n *pnode, r listener.RunReport)
		}{{
			name: "gets the bindings and PATCHBAY_ variables",
			id:   "pe-env",
			manifest: fmt.Sprintf(`requires: {PE_DB: "{PE_DB}"}
environment: {PE_STATIC: static-value}
provision: {command: %s}`, provSh("env > "+out+"/pe-env; echo \"hello from $PATCHBAY_SERVICE\"")),
			want: listener.ResultOK,
			check: func(t *testing.T, n *pnode, r listener.RunReport) {
				env := strings.Split(provRead(out+"/pe-env"), "\n")
				rev := r.Services[0].Revision
				if rev == 0 {
					t.Errorf("run revision 0")
				}
				for _, want := range []string{
					"PE_DB=postgres://pe", "PE_STATIC=static-value",
					"PATCHBAY_SERVICE=pe-env", "PATCHBAY_NODE=" + n.name, "PATCHBAY_FEDERATION=default",
					"PATCHBAY_REVISION=" + strconv.FormatUint(rev, 10),
				} {
					if !slices.Contains(env, want) {
						t.Errorf("provision environment lacks %s:\n%s", want, provRead(out+"/pe-env"))
					}
				}
				if !n.logged("provision output", "service=pe-env", "line=hello from pe-env") {
					t.Errorf("the command's output is not logged")
				}
			},
		}, {
			name:     "listener.yaml overrides the manifest's",
			id:       "po-override",
			manifest: fmt.Sprintf(`provision: {command: %s}`, provSh("echo manifest > "+out+"/po-manifest")),
			node:     fmt.Sprintf("    provision: {command: %s}\n", provSh("echo listener > "+out+"/po-listener")),
			want:     listener.ResultOK,
			check: func(t *testing.T, n *pnode, r listener.RunReport) {
				if got := provRead(out + "/po-listener"); got != "listener\n" {
					t.Errorf("listener.yaml's command wrote %q, want listener", got)
				}
				if _, err := os.Stat(out + "/po-manifest"); err == nil {
					t.Errorf("the manifest's command ran too")
				}
			},
		}, {
			name:     "past its timeout fails the run",
			id:       "pt-timeout",
			manifest: fmt.Sprintf(`provision: {command: %s, timeout: 300ms}`, provSh("exec sleep 20")),
			want:     listener.ResultFailed,
			check: func(t *testing.T, n *pnode, r listener.RunReport) {
				p := r.Services[0].Provision
				if p == nil || !p.Ran || !strings.Contains(p.Error, "300ms") {
					t.Errorf("provision %+v, want an error naming the 300ms timeout", p)
				}
				if p != nil && p.Duration > 5*time.Second {
					t.Errorf("provision took %s: the command was not stopped at its timeout", p.Duration)
				}
				if !strings.Contains(r.Message, "provision command") || !strings.Contains(r.Message, "300ms") {
					t.Errorf("run message %q does not name the provision command's 300ms timeout", r.Message)
				}
				c.provWaitStatus(t, n.name, "failed naming the 300ms timeout", func(st registry.Status) bool {
					return st.Result == listener.ResultFailed && strings.Contains(st.Message, "300ms")
				})
			},
		}}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.id
				c.provPublish(t, "id: "+id+"\n"+tt.manifest)
				n := c.startProvNode(t, id+"-node", provNodeSpec{services: "  - service: " + id + "\n" + tt.node})
				var r listener.RunReport
				testcluster.Eventually(t, provSettle, "a run provisions "+id, func() bool {
					var ok bool
					r, ok = n.find(func(r listener.RunReport) bool { return r.Services[0].Provision != nil })
					return ok
				})
				if r.Result != tt.want {
					t.Errorf("run %s: %s, want %s", r.Result, r.Message, tt.want)
				}
				tt.check(t, n, r)
			})
		}
	})

	t.Run("failed reload is run again by the retry", func(t *testing.T) {
		out := t.TempDir()
		count := out + "/reloads"
		c.provSetDatastore(t, "RR_V", "1")
		c.provPublish(t, fmt.Sprintf(`id: rr-svc
requires: {RR_V: "{RR_V}"}
templates:
  conf: {contents: %s, destination: /etc/rr/conf, reload: %s}`,
			provQuote(`v={{ binding "RR_V" }}`+"\n"),
			provSh(fmt.Sprintf(`n=$(cat %[1]s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s; [ $n -ge 2 ] || { echo "reload $n fails" >&2; exit 1; }`, count))))
		n := c.startProvNode(t, "rr-node", provNodeSpec{services: "  - service: rr-svc\n"})
		testcluster.Eventually(t, provSettle, "a run installs conf and fails its reload", func() bool {
			_, ok := n.find(func(r listener.RunReport) bool { return r.Result == listener.ResultFailed })
			return ok
		})
		r, _ := n.find(func(r listener.RunReport) bool { return r.Result == listener.ResultFailed })
		if tr := provTemplate(provService(r, "rr-svc"), "conf"); tr == nil || !tr.Changed || !strings.Contains(tr.Error, "reload failed") {
			t.Errorf("template conf: %+v, want installed with its reload failed", tr)
		}
		if n.file("/etc/rr/conf") != "v=1\n" {
			t.Errorf("conf is %q, want v=1 installed", n.file("/etc/rr/conf"))
		}
		testcluster.Eventually(t, provSettle, "a retry succeeds", func() bool { return n.settled(listener.ResultOK) })
		if got := provRead(count); got != "2\n" {
			t.Errorf("reload ran %q times, want 2: once failing, once by the retry", got)
		}
	})

	// What changed while the listener was off is unknown, so its first run
	// provisions every service again, even with the files unchanged.
	t.Run("a restart provisions again", func(t *testing.T) {
		out := t.TempDir()
		c.provSetDatastore(t, "RS_V", "1")
		c.provPublish(t, fmt.Sprintf(`id: rs-svc
requires: {RS_V: "{RS_V}"}
provision: {command: %s}
templates:
  conf: {contents: %s, destination: /etc/rs/conf}`,
			provSh("echo p >> "+out+"/provisions"), provQuote(`v={{ binding "RS_V" }}`+"\n")))
		spec := provNodeSpec{services: "  - service: rs-svc\n"}
		n := c.startProvNode(t, "rs-node", spec)
		testcluster.Eventually(t, provSettle, "rs-svc is provisioned", func() bool {
			return n.file("/etc/rs/conf") == "v=1\n" && n.settled(listener.ResultOK)
		})
		if got := lines(provRead(out + "/provisions")); got != 1 {
			t.Fatalf("provisioned %d times, want 1", got)
		}
		n.stop()
		spec.dir = n.dir
		n = c.startProvNode(t, "rs-node", spec)
		testcluster.Eventually(t, provSettle, "the restarted listener runs", func() bool { return n.settled(listener.ResultOK) })
		if s := provService(*n.last.Load(), "rs-svc"); s == nil || len(s.Templates) != 1 || s.Templates[0].Changed {
			t.Errorf("first run after the restart: %+v, want conf unchanged", s)
		}
		if got := lines(provRead(out + "/provisions")); got != 2 {
			t.Errorf("provisioned %d times, want 2: once before the restart, once after", got)
		}
	})

	t.Run("after orders steps, the others run in parallel", func(t *testing.T) {
		out := t.TempDir()
		for _, s := range []string{"a", "b", "c"} {
			log := out + "/" + s + ".log"
			c.provPublish(t, fmt.Sprintf("id: od-%s\nprovision: {command: %s}", s,
				provSh("date +%s%N >> "+log+"; sleep 0.5; date +%s%N >> "+log)))
		}
		// Bound before the node starts, so that its first run provisions
		// all three.
		c.provWaitBound(t, "", "", "od-a", "od-b", "od-c")
		n := c.startProvNode(t, "od-node", provNodeSpec{services: `  - service: od-a
  - service: od-b
    after: [od-a]
  - service: od-c
`})
		testcluster.Eventually(t, provSettle, "three provisions ran", func() bool {
			_, ok := n.find(func(r listener.RunReport) bool {
				return r.Result == listener.ResultOK && len(r.Services) == 3 && r.Services[0].Provision != nil
			})
			return ok
		})
		a, b, cc := provStamps(t, out+"/a.log"), provStamps(t, out+"/b.log"), provStamps(t, out+"/c.log")
		if len(a) != 2 || len(b) != 2 || len(cc) != 2 {
			t.Fatalf("start and end stamps a %v, b %v, c %v: want each provision to run once", a, b, cc)
		}
		if b[0].Before(a[1]) {
			t.Errorf("od-b started %s before od-a, which it runs after, ended", a[1].Sub(b[0]))
		}
		if !cc[0].Before(a[1]) || !a[0].Before(cc[1]) {
			t.Errorf("od-c (%s–%s) did not overlap od-a (%s–%s): independent steps ran one after another",
				cc[0].Format("15:04:05.000"), cc[1].Format("15:04:05.000"), a[0].Format("15:04:05.000"), a[1].Format("15:04:05.000"))
		}
	})

	t.Run("failing provision is retried with backoff until it succeeds", func(t *testing.T) {
		out := t.TempDir()
		count, times := out+"/attempts", out+"/times"
		c.provPublish(t, fmt.Sprintf("id: rt-svc\nprovision: {command: %s}", provSh(fmt.Sprintf(
			`n=$(cat %[1]s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s; date +%%s%%N >> %[2]s; [ $n -ge 3 ] || { echo "attempt $n fails" >&2; exit 1; }`,
			count, times))))
		// Bound before the node starts, so that its first run provisions
		// and every later one is a retry.
		c.provWaitBound(t, "", "", "rt-svc")
		n := c.startProvNode(t, "rt-node", provNodeSpec{services: "  - service: rt-svc\n"})
		var sawRetry, sawStatus bool
		testcluster.Eventually(t, provSettle, "the provision succeeds", func() bool {
			rep := n.l.Report()
			if r := rep.LastRun; r != nil && r.Result == listener.ResultFailed && !rep.Queue.RetryAt.IsZero() {
				if !strings.Contains(r.Message, "provision command") || !strings.Contains(r.Message, "fails") {
					t.Errorf("failed run's message %q does not name the provision command and its output", r.Message)
				}
				end := r.Started.Add(r.Duration)
				if wait := rep.Queue.RetryAt.Sub(end); wait < 200*time.Millisecond || wait > 3*time.Second {
					t.Errorf("retry at %s after the failure, want between initial/2 and max*1.5", wait)
				}
				sawRetry = true
			}
			if st, ok := c.provStatus(t, "rt-node"); ok && st.Result == listener.ResultFailed && strings.Contains(st.Details["rt-svc"], "provision command") {
				sawStatus = true
			}
			return provRead(count) == "3\n" && n.settled(listener.ResultOK)
		})
		if !sawRetry {
			t.Error("Report() never showed a failed last run with retry_at set")
		}
		if !sawStatus {
			t.Error("the status in Consul never showed the failing provision command")
		}
		ts := provStamps(t, times)
		if len(ts) != 3 {
			t.Fatalf("%d attempts, want 3", len(ts))
		}
		for i := 1; i < len(ts); i++ {
			// The backoff starts at 500ms, randomized by half: never
			// under 250ms.
			if gap := ts[i].Sub(ts[i-1]); gap < 200*time.Millisecond {
				t.Errorf("attempt %d came %s after the previous one: no backoff", i+1, gap)
			}
		}
		if q := n.l.Report().Queue; !q.RetryAt.IsZero() {
			t.Errorf("retry still due at %s after a successful run", q.RetryAt)
		}
		if st, _ := c.provStatus(t, "rt-node"); st.Result != listener.ResultOK {
			t.Errorf("status in Consul %+v, want ok", st)
		}
	})

	t.Run("manifest change reaches the node without a binding value change", func(t *testing.T) {
		doc := func(v string) string {
			return fmt.Sprintf("id: mf-svc\ntemplates:\n  conf: {contents: %s, destination: /etc/mf/conf}", provQuote("version "+v+"\n"))
		}
		c.provPublish(t, doc("1"))
		// Anti-entropy too slow to matter: only the binding's event can
		// bring the change.
		n := c.startProvNode(t, "mf-node", provNodeSpec{services: "  - service: mf-svc\n", antiEntropy: "10m"})
		testcluster.Eventually(t, provSettle, "mf-svc renders version 1", func() bool {
			return n.file("/etc/mf/conf") == "version 1\n" && n.settled(listener.ResultOK)
		})
		b1 := c.provBinding(t, "mf-svc")
		c.provPublish(t, doc("2"))
		took := testcluster.Eventually(t, provSettle, "mf-svc renders version 2", func() bool {
			return n.file("/etc/mf/conf") == "version 2\n" && n.settled(listener.ResultOK)
		})
		t.Logf("manifest change installed %s after publishing", took.Round(time.Millisecond))
		b2 := c.provBinding(t, "mf-svc")
		if b2.Manifest == b1.Manifest || b2.Revision <= b1.Revision {
			t.Errorf("binding after republishing: manifest %s revision %d, before %s revision %d; want a new digest and revision", b2.Manifest, b2.Revision, b1.Manifest, b1.Revision)
		}
		if len(b2.Vars) != 0 || len(b1.Vars) != 0 {
			t.Errorf("binding vars %v then %v, want none", b1.Vars, b2.Vars)
		}
		if got := n.last.Load().Services[0].Revision; got != b2.Revision {
			t.Errorf("run applied revision %d, want %d", got, b2.Revision)
		}
	})

	t.Run("anti-entropy catches a change without events", func(t *testing.T) {
		c.provSetDatastore(t, "AE_V", "one")
		c.provPublish(t, fmt.Sprintf(`id: ae-svc
requires: {AE_V: "{AE_V}"}
templates:
  conf: {contents: %s, destination: /etc/ae/conf}`, provQuote(`v={{ binding "AE_V" }}`+"\n")))
		n := c.startProvNode(t, "ae-node", provNodeSpec{services: "  - service: ae-svc\n", antiEntropy: "1s", noBus: true})
		testcluster.Eventually(t, provSettle, "ae-svc renders one", func() bool {
			return n.file("/etc/ae/conf") == "v=one\n" && n.settled(listener.ResultOK)
		})
		c.provSetDatastore(t, "AE_V", "two")
		// Resolver (~0.1–1s) + anti-entropy (0.8–1.2s) + quiet (0.1s).
		took := testcluster.Eventually(t, 8*time.Second, "ae-svc renders two without events", func() bool {
			return n.file("/etc/ae/conf") == "v=two\n"
		})
		t.Logf("anti-entropy installed the change %s after it was made", took.Round(time.Millisecond))
	})
}

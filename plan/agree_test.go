package plan_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/plan"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
	"github.com/patchbay/patchbay/templates"
)

// agreement runs cases against one real Consul: each case stores its
// before state, lets a real listener run once, stores its after state,
// asks plan what the node's next run does and lets the listener run it.
type agreement struct {
	t   *testing.T
	reg *registry.Client
}

func newAgreement(t *testing.T) *agreement {
	t.Helper()
	c := testcluster.StartConsul(t)
	reg, err := registry.New(registry.WithAddress(c.Addr), registry.WithLogger(testcluster.Logger(t, "registry")))
	if err != nil {
		t.Fatal(err)
	}
	return &agreement{t: t, reg: reg}
}

// agreeCase is one node of one federation, from before to after.
type agreeCase struct {
	fed, node, region string
	// services are listener.yaml's services lines.
	services      string
	before, after *binding.Snapshot
	dir           string // the case's own: the node's root, state and command log
	// afterBefore, when set, runs once the before run installed its files.
	afterBefore func(t *testing.T)
}

// outcome is what a run does for one service, as both sides can say it.
type outcome struct {
	Result  string   `json:"result"`
	Changed []string `json:"changed,omitempty"`
	// Diffs are the changed files' diffs, old → new, by template.
	Diffs     map[string]string `json:"diffs,omitempty"`
	Reloads   []string          `json:"reloads,omitempty"`
	Runtime   []string          `json:"runtime,omitempty"`
	Provision string            `json:"provision,omitempty"`
}

// logCommand is a command that logs word to the case's log: what the
// listener ran is read back from there.
func (c *agreeCase) logCommand(word string) []string {
	return []string{"/bin/sh", "-c", fmt.Sprintf("echo %s >> %s", word, filepath.Join(c.dir, "commands.log"))}
}

// wordOf is the word a logCommand logs, from the command as a report
// prints it.
func wordOf(command string) string {
	_, after, ok := strings.Cut(command, "echo ")
	if !ok {
		return command
	}
	word, _, _ := strings.Cut(after, " ")
	return word
}

func (c *agreeCase) logged() []string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "commands.log"))
	_ = os.Remove(filepath.Join(c.dir, "commands.log"))
	return strings.Fields(string(b))
}

// store makes Consul hold snap's manifests and bindings for c's
// federation, as publish and the resolver would: a manifest gone from
// prev is unpublished, and a binding is written only when it changes.
func (a *agreement) store(c *agreeCase, prev, snap *binding.Snapshot) {
	a.t.Helper()
	ctx := context.Background()
	for i := range snap.Manifests {
		if _, err := a.reg.Publish(ctx, &snap.Manifests[i]); err != nil {
			a.t.Fatal(err)
		}
	}
	if prev != nil {
		for _, m := range prev.Manifests {
			if !slices.ContainsFunc(snap.Manifests, func(n manifest.Manifest) bool { return n.ID == m.ID }) {
				if err := a.reg.Unpublish(ctx, c.fed, m.ID); err != nil {
					a.t.Fatal(err)
				}
			}
		}
	}
	stored, _, _, err := a.reg.Bindings(ctx)
	if err != nil {
		a.t.Fatal(err)
	}
	held := map[string]registry.StoredBinding{}
	for _, sb := range stored {
		if sb.Federation == c.fed {
			held[sb.Service+"/"+sb.Region] = sb
		}
	}
	var writes []registry.BindingWrite
	for _, b := range resolver.Resolve(snap).Bindings {
		k := b.Service + "/" + b.Region
		was, ok := held[k]
		delete(held, k)
		if ok && sameBinding(a.t, was.Value, b) {
			continue
		}
		b.Revision = 1 + was.ModifyIndex
		data, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		writes = append(writes, registry.BindingWrite{StoredBinding: registry.StoredBinding{Federation: c.fed, Service: b.Service, Region: b.Region, Value: data, ModifyIndex: was.ModifyIndex}})
	}
	for _, sb := range held {
		writes = append(writes, registry.BindingWrite{StoredBinding: sb, Delete: true})
	}
	if _, err := a.reg.WriteBindings(ctx, writes); err != nil {
		a.t.Fatal(err)
	}
}

// sameBinding reports whether a stored binding holds b, revision aside.
func sameBinding(t *testing.T, stored []byte, b binding.Binding) bool {
	was, err := binding.DecodeBinding("stored", stored)
	if err != nil {
		t.Fatal(err)
	}
	b.Revision = was.Revision
	x, _ := json.Marshal(was)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// run checks that plan predicts exactly what the listener's run does, and
// returns what the listener did.
func (a *agreement) run(c *agreeCase) map[string]outcome {
	t := a.t
	t.Helper()
	ctx := t.Context()
	root := filepath.Join(c.dir, "root")
	cfgPath := filepath.Join(c.dir, "listener.yaml")
	region := ""
	if c.region != "" {
		region = "region: " + c.region + "\n"
	}
	doc := fmt.Sprintf("node: %s\naddress: 127.0.0.1\nroot: %s\nstate_dir: %s\ncontrol: \"off\"\n%s%s\nservices:\n%s",
		c.node, root, filepath.Join(c.dir, "state"), region,
		`allow: {commands: ["**"], sources: ["/**"], destinations: ["/**"]}`, c.services)
	if err := os.WriteFile(cfgPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := listener.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	l, err := listener.New(cfg, a.reg, listener.WithFederation(c.fed), listener.WithoutDriftWatch(), listener.WithLogger(testcluster.Logger(t, c.node)))
	if err != nil {
		t.Fatal(err)
	}
	a.store(c, nil, c.before)
	first, err := l.Once(ctx)
	if err != nil {
		t.Logf("before run: %v", err)
	}
	c.logged()
	if c.afterBefore != nil {
		c.afterBefore(t)
	}
	a.store(c, c.before, c.after)
	p, err := plan.Compute(ctx, c.before, c.after, plan.WithRenderer(templates.NewRenderer()), plan.WithHosts(hostsOf(c, cfg)))
	if err != nil {
		t.Fatal(err)
	}
	was := resultsOf(first)
	want := predicted(c, p, was)
	l.Resync("the after state is stored") // as the bindings event would
	old := filesUnder(t, root)
	run, err := l.Once(ctx)
	if err != nil {
		t.Logf("after run: %v", err)
	}
	got := did(c, run, was, old, filesUnder(t, root))
	for _, svc := range slices.Sorted(mapsKeys(got, want)) {
		if g, w := show(got[svc]), show(want[svc]); g != w {
			t.Errorf("%s of node %s: plan predicts %s, the listener did %s", svc, c.node, w, g)
		}
	}
	return got
}

func hostsOf(c *agreeCase, cfg *listener.Config) []plan.Host {
	var out []plan.Host
	for _, s := range cfg.Services {
		out = append(out, plan.Host{Node: c.node, Federation: c.fed, Service: s.Service, Region: cfg.Region, Provision: s.Provision})
	}
	return out
}

func show(o outcome) string {
	if o.Result == "" {
		o.Result = "nothing"
	}
	b, _ := json.Marshal(o)
	return string(b)
}

func mapsKeys(ms ...map[string]outcome) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// did is what the listener's run did, per service that it did something
// for or that did not end ok.
func did(c *agreeCase, run *listener.RunReport, was map[string]string, old, now map[string][]byte) map[string]outcome {
	out := map[string]outcome{}
	words := c.logged()
	if run == nil {
		return out
	}
	for _, s := range run.Services {
		o := outcome{Result: s.Result}
		for _, tr := range s.Templates {
			if tr.Apply == model.ApplyRuntime {
				o.Runtime = append(o.Runtime, tr.Name)
			}
			if tr.Changed {
				o.Changed = append(o.Changed, tr.Name)
				dest := strings.TrimPrefix(tr.Destination, filepath.Join(c.dir, "root"))
				d, err := templates.Diff(old[dest], now[dest], dest)
				if err != nil {
					d = err.Error()
				}
				o.addDiff(tr.Name, d)
			}
			if tr.Error != "" {
				o.Result = listener.ResultFailed
			}
		}
		for _, w := range words {
			switch {
			case strings.HasPrefix(w, "reload-"+s.Service+"-"):
				o.Reloads = append(o.Reloads, w)
			case strings.HasPrefix(w, "provision-"+s.Service+"-"):
				o.Provision = w
			}
		}
		if o.quiet(was[s.Service]) {
			continue
		}
		out[s.Service] = o
	}
	return out
}

// predicted is what plan says the node's run does.
func predicted(c *agreeCase, p *plan.Plan, was map[string]string) map[string]outcome {
	out := map[string]outcome{}
	for _, n := range p.Nodes {
		if n.Node != c.node {
			continue
		}
		for _, s := range n.Services {
			o := outcome{Result: s.Result}
			for _, tr := range s.Templates {
				if !tr.Changed {
					continue
				}
				o.Changed = append(o.Changed, tr.Name)
				o.addDiff(tr.Name, tr.Diff)
				switch tr.Apply {
				case model.ApplyReload:
					if w := wordOf(tr.Reload); !slices.Contains(o.Reloads, w) {
						o.Reloads = append(o.Reloads, w)
					}
				case model.ApplyRuntime:
					o.Runtime = append(o.Runtime, tr.Name)
				}
			}
			if s.Provision != nil {
				o.Provision = wordOf(s.Provision.Command)
			}
			if o.quiet(was[s.Service]) {
				continue
			}
			out[s.Service] = o
		}
	}
	return out
}

// parseManifest parses a case's manifest, in its federation.
func parseManifest(t *testing.T, fed, doc string) manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse("case.yaml", []byte("federation: "+fed+"\n"+doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return *m
}

func instance(fed, service, node, region string, port int, public bool, provides map[string]string) binding.Instance {
	p := map[string]string{}
	for k, v := range provides {
		v = strings.ReplaceAll(v, "{HOST}", "127.0.0.1")
		p[k] = strings.ReplaceAll(v, "{PORT}", fmt.Sprint(port))
	}
	return binding.Instance{ID: binding.InstanceID(service, node, port), Service: service, Federation: fed, Node: node, Address: "127.0.0.1", Port: port, Region: region, Index: -1, Public: public, Provides: p}
}

func (o *outcome) addDiff(template, diff string) {
	if o.Diffs == nil {
		o.Diffs = map[string]string{}
	}
	o.Diffs[template] = diff
}

// filesUnder reads every regular file under root, by its path below root.
func filesUnder(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil //nolint:nilerr // a missing root has no files
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[strings.TrimPrefix(path, root)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// quiet reports whether o does nothing and ends as the run before did
// (or ok): plan lists only services whose binding changes, and a
// listener reports every service it hosts.
func (o outcome) quiet(before string) bool {
	return len(o.Changed) == 0 && len(o.Reloads) == 0 && len(o.Runtime) == 0 && o.Provision == "" &&
		(o.Result == model.ResultOK || o.Result == before)
}

// resultsOf is each service's result in run.
func resultsOf(run *listener.RunReport) map[string]string {
	out := map[string]string{}
	if run != nil {
		for _, s := range run.Services {
			out[s.Service] = s.Result
		}
	}
	return out
}

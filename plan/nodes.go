package plan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// Host says a node's listener hosts a service. Nodes running an instance
// of a service are known from the snapshot; Hosts adds those that host one
// without registering an instance (a load balancer, say), as their last
// recorded status shows, and what a node's listener.yaml says of it.
type Host struct {
	Node       string `json:"node"`
	Federation string `json:"federation"`
	Service    string `json:"service"`
	// Region is the node's region, which its templates render with.
	Region string `json:"region,omitempty"`
	// Provision is listener.yaml's provision command of the service on
	// the node, which replaces the manifest's; nil for none.
	Provision *manifest.Provision `json:"provision,omitempty"`
}

// WithHosts adds nodes that host services without an instance.
func WithHosts(hosts []Host) Option { return func(c *config) { c.hosts = append(c.hosts, hosts...) } }

// NodeChange is what one node's listener would do.
type NodeChange struct {
	Node string `json:"node"`
	// Services are the runs of the services whose binding changes, as
	// the listener reports them (model.ServiceRun): result, reason, the
	// templates that change (with a diff and how the change applies) or
	// fail, and the provision command that runs.
	Services []model.ServiceRun `json:"services"`
	// Reloads are the distinct reload commands of the changed files, run
	// once each.
	Reloads [][]string `json:"reloads,omitempty"`
}

// hosting is one (node, service, region) whose binding changes.
type hosting struct {
	Host
	before, after *binding.Binding
}

// nodeChanges lists, per node, the services whose effective binding
// changes, with what their run would render and run.
func (s *sides) nodeChanges(ctx context.Context, r Renderer, hosts []Host, changes []BindingChange) ([]NodeChange, []string, error) {
	todo := s.affected(hosts)
	var notes []string
	seen := map[svcKey]bool{}
	byNode := map[string]*NodeChange{}
	for _, h := range todo {
		seen[svcKey{h.Federation, h.Service}] = true
		run, err := s.serviceRun(ctx, r, h)
		if err != nil {
			return nil, nil, err
		}
		nc := byNode[h.Node]
		if nc == nil {
			nc = &NodeChange{Node: h.Node}
			byNode[h.Node] = nc
		}
		nc.Services = append(nc.Services, run)
	}
	for _, c := range changes {
		k := svcKey{c.Federation, c.Service}
		if !seen[k] && c.Change != ChangeRemoved {
			seen[k] = true
			notes = append(notes, fmt.Sprintf("%s (federation %s): no node is known to host it (no live instance, no recorded status); nodes whose listener hosts it re-render its files too", c.Service, c.Federation))
		}
	}
	var out []NodeChange
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		nc := byNode[node]
		nc.Reloads = distinctReloads(nc.Services, func(fed, service, template string) []string {
			return s.after.manifests[svcKey{fed, service}].Templates[template].Reload
		})
		out = append(out, *nc)
	}
	return out, notes, nil
}

// affected returns every (node, service, region) of the after snapshot,
// known from instances and hosts, whose effective binding changes.
func (s *sides) affected(hosts []Host) []hosting {
	all := slices.Clone(hosts)
	for _, in := range s.after.snap.Instances {
		all = append(all, Host{Node: in.Node, Federation: manifest.FederationOf(in.Federation), Service: in.Service, Region: in.Region})
	}
	slices.SortStableFunc(all, func(a, b Host) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region))
	})
	all = slices.CompactFunc(all, func(a, b Host) bool { // the first, which may carry listener.yaml's provision, stays
		return a.Node == b.Node && a.Federation == b.Federation && a.Service == b.Service && a.Region == b.Region
	})
	var out []hosting
	for _, h := range all {
		b := s.before.binding(h.Federation, h.Service, h.Region)
		a := s.after.binding(h.Federation, h.Service, h.Region)
		if a == nil && b == nil {
			continue
		}
		if a != nil && b != nil {
			if bc, _ := diffBinding(b, a); bc.Change == "" {
				continue
			}
		}
		out = append(out, hosting{Host: h, before: b, after: a})
	}
	return out
}

// serviceRun is what a listener's run does for one hosted service whose
// binding changes, as the run model decides it. What the node has
// installed is taken to be the render of the old manifest and binding
// (none when that binding was not ready): the plan reads no node's files.
func (s *sides) serviceRun(ctx context.Context, r Renderer, h hosting) (model.ServiceRun, error) {
	run := model.ServiceRun{Federation: h.Federation, Service: h.Service, Region: h.Region}
	m := s.after.manifests[svcKey{h.Federation, h.Service}]
	if m != nil && m.Rollout != nil {
		run.RolloutGroup = m.Rollout.Group
	}
	if h.after != nil {
		run.Revision = h.after.Revision
	}
	hosted := model.Hosted{Service: h.Service, Provision: h.Provision}
	rn := &runRenderer{ctx: ctx, r: r, node: model.Node{Name: h.Node, Federation: h.Federation, Region: h.Region}, h: h,
		old: s.before.manifests[svcKey{h.Federation, h.Service}], secrets: slices.Concat(secretsOf(h.after), secretsOf(h.before))}
	in := model.Input{Hosted: hosted, Manifest: m, Binding: h.after, Locate: templates.LocateUpstream}
	if r != nil {
		in.Installed = rn.installed
	}
	svc := model.Prepare(rn.node, in)
	run.Result, run.Reason = cmp.Or(svc.Result, model.ResultOK), svc.Reason
	if !svc.Policy && svc.Result != "" {
		return run, nil
	}
	changed := false
	if r != nil {
		for _, rd := range svc.Renders {
			tr, err := rn.template(svc, m, rd)
			if err != nil {
				return run, err
			}
			if tr.Error != "" && run.Result == model.ResultOK {
				run.Result, run.Reason = model.ResultFailed, tr.Error
			}
			if tr.Changed || tr.Error != "" {
				changed = changed || tr.Changed
				run.Templates = append(run.Templates, tr)
			}
		}
	}
	if due, why := svc.ProvisionDue(changed); due && run.Result == model.ResultOK {
		if c := model.ProvisionOf(hosted, m); c != nil && len(c.Command) > 0 {
			run.Provision = &model.CommandResult{Command: strings.Join(c.Command, " "), Why: why}
		}
	}
	return run, nil
}

// runRenderer renders one hosted service's templates for a plan: the old
// render stands for the installed file.
type runRenderer struct {
	ctx     context.Context
	r       Renderer
	node    model.Node
	h       hosting
	old     *manifest.Manifest
	secrets []string
}

// installed is the old manifest's template rendered from the old binding.
func (rn *runRenderer) installed(name string) ([]byte, bool) {
	spec, ok := templateOf(rn.old, name)
	if !ok || rn.h.before == nil || !rn.h.before.Ready() || spec.Destination == "" {
		return nil, false
	}
	out, err := renderOne(rn.ctx, rn.r, rn.old, spec, model.Render{Template: name, Binding: rn.h.before, Region: rn.node.Region, Min: minOf(spec)})
	return out, err == nil
}

// template renders one template as the listener's run would and says how
// its file changes; values the redaction policy hides are masked in the
// diff and in an error, which may quote the template's data.
func (rn *runRenderer) template(svc model.Service, m *manifest.Manifest, rd model.Render) (model.TemplateRun, error) {
	tr := model.TemplateRun{Name: rd.Template, Destination: rd.Spec.Destination}
	if rd.Error != "" {
		tr.Error = rd.Error
		return tr, nil
	}
	out, err := renderOne(rn.ctx, rn.r, m, rd.Spec, rd)
	if errors.Is(err, templates.ErrTooFewUpstreams) && svc.GuardEvicts(rd.Template) { // policy beats last-good
		rd.Min = 0
		out, err = renderOne(rn.ctx, rn.r, m, rd.Spec, rd)
	}
	if err != nil {
		tr.Error = redact.Text(err.Error(), rn.secrets)
		return tr, nil
	}
	before, existed := rn.installed(rd.Template)
	fd := model.Decide(rd.Spec, before, existed, out)
	tr.Changed, tr.Apply = fd.Changed, fd.Apply
	if !fd.Changed {
		return tr, nil
	}
	if tr.Diff, err = templates.Diff(before, out, rd.Spec.Destination); err != nil {
		return tr, fmt.Errorf("plan: diff %s of %s: %w", rd.Template, m.ID, err)
	}
	tr.Diff = redact.Text(tr.Diff, rn.secrets)
	if len(rd.Spec.Reload) > 0 {
		tr.Reload = strings.Join(rd.Spec.Reload, " ")
	}
	return tr, nil
}

func secretsOf(b *binding.Binding) []string {
	if b == nil {
		return nil
	}
	return b.Secrets()
}

func templateOf(m *manifest.Manifest, name string) (manifest.TemplateFile, bool) {
	if m == nil {
		return manifest.TemplateFile{}, false
	}
	spec, ok := m.Templates[name]
	return spec, ok
}

func minOf(spec manifest.TemplateFile) int {
	if spec.Min != nil {
		return *spec.Min
	}
	return manifest.DefaultTemplateMin
}

// renderOne renders a template with the data a listener gives it: the
// node's region, not the binding's.
func renderOne(ctx context.Context, r Renderer, m *manifest.Manifest, spec manifest.TemplateFile, rd model.Render) ([]byte, error) {
	contents, err := templates.Contents(spec)
	if err != nil {
		return nil, err
	}
	return r.Render(ctx, rd.Template, contents, templates.Data{
		Service: m.ID, Federation: manifest.FederationOf(m.Federation), Region: rd.Region,
		Environment: m.Environment, Binding: rd.Binding, Options: spec.Options, Min: rd.Min,
	})
}

// distinctReloads are the reload commands the runs' changed files run.
func distinctReloads(runs []model.ServiceRun, argvOf func(fed, service, template string) []string) [][]string {
	var out [][]string
	for _, run := range runs {
		for _, t := range run.Templates {
			if t.Apply != model.ApplyReload {
				continue
			}
			argv := argvOf(run.Federation, run.Service, t.Name)
			if !slices.ContainsFunc(out, func(c []string) bool { return slices.Equal(c, argv) }) {
				out = append(out, argv)
			}
		}
	}
	return out
}

// staleProvides notes services whose provides change: live instances keep
// the values they registered with until they register again, so the plan
// (like the resolver) still binds the old ones.
func staleProvides(before, after *binding.Snapshot) []string {
	old := map[svcKey]*manifest.Manifest{}
	for i := range before.Manifests {
		m := &before.Manifests[i]
		old[svcKey{manifest.FederationOf(m.Federation), m.ID}] = m
	}
	var notes []string
	for i := range after.Manifests {
		m := &after.Manifests[i]
		o := old[svcKey{manifest.FederationOf(m.Federation), m.ID}]
		if o != nil && (!maps.Equal(o.Provides, m.Provides) || o.Public != m.Public) {
			notes = append(notes, fmt.Sprintf("%s (federation %s): its provides change, but live instances publish the values they registered with until they register again; this plan binds those", m.ID, manifest.FederationOf(m.Federation)))
		}
	}
	return notes
}

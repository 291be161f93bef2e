package plan

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// Host says a node's listener hosts a service. Nodes running an instance
// of a service are known from the snapshot; Hosts adds those that host one
// without registering an instance (a load balancer, say), as their last
// recorded status shows.
type Host struct {
	Node       string `json:"node"`
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Region     string `json:"region,omitempty"`
}

// WithHosts adds nodes that host services without an instance.
func WithHosts(hosts []Host) Option { return func(c *config) { c.hosts = append(c.hosts, hosts...) } }

// NodeChange is what one node's listener would do.
type NodeChange struct {
	Node     string       `json:"node"`
	Services []ServiceRun `json:"services"`
	// Reloads are the distinct reload commands of the changed files, run
	// once each.
	Reloads [][]string `json:"reloads,omitempty"`
}

// ServiceRun is what a node's run would do for one service.
type ServiceRun struct {
	Federation string `json:"federation"`
	Service    string `json:"service"`
	Region     string `json:"region"`
	// Skipped says why nothing is rendered and no command runs (an
	// unresolved requirement): every file keeps its last good version.
	Skipped   string       `json:"skipped,omitempty"`
	Files     []FileChange `json:"files,omitempty"`
	Provision []string     `json:"provision,omitempty"` // the provision command that runs
	Rollout   string       `json:"rollout,omitempty"`   // its rollout group
}

// FileChange is one template whose file would change, or fail to render.
type FileChange struct {
	Template    string   `json:"template"`
	Destination string   `json:"destination"`
	Diff        string   `json:"diff,omitempty"`  // unified diff, old render → new
	Error       string   `json:"error,omitempty"` // not rendered: the file keeps its last good version
	Reload      []string `json:"reload,omitempty"`
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
		nc.Reloads = distinctReloads(nc.Services)
		out = append(out, *nc)
	}
	return out, notes, nil
}

// affected returns every (node, service, region) of the after snapshot,
// known from instances and hosts, whose effective binding changes.
func (s *sides) affected(hosts []Host) []hosting {
	all := slices.Clone(hosts)
	for _, in := range s.after.snap.Instances {
		all = append(all, Host{Node: in.Node, Federation: fedOf(in.Federation), Service: in.Service, Region: in.Region})
	}
	slices.SortFunc(all, func(a, b Host) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region))
	})
	all = slices.Compact(all)
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
// binding changes: it renders every template from scratch, installs
// those that differ, reloads them and runs the provision command; with an
// unresolved requirement it renders nothing.
func (s *sides) serviceRun(ctx context.Context, r Renderer, h hosting) (ServiceRun, error) {
	run := ServiceRun{Federation: h.Federation, Service: h.Service, Region: h.Region}
	m := s.after.manifests[svcKey{h.Federation, h.Service}]
	switch {
	case h.after == nil || m == nil:
		run.Skipped = "no longer published: the listener stops rendering it; its files stay"
		return run, nil
	case !h.after.Ready():
		run.Skipped = unresolvedReason(h.after.Unresolved)
		return run, nil
	}
	if m.Rollout != nil {
		run.Rollout = m.Rollout.Group
	}
	if m.Provision != nil {
		run.Provision = m.Provision.Command
	}
	if r == nil {
		return run, nil
	}
	old := s.before.manifests[svcKey{h.Federation, h.Service}]
	for _, name := range slices.Sorted(maps.Keys(m.Templates)) {
		fc, err := s.fileChange(ctx, r, h, old, m, name)
		if err != nil {
			return run, err
		}
		if fc.Diff != "" || fc.Error != "" {
			run.Files = append(run.Files, fc)
		}
	}
	return run, nil
}

func unresolvedReason(us []binding.Unresolved) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = fmt.Sprintf("%s unresolved (%s)", u.Var, u.Reason)
	}
	return strings.Join(parts, "; ") + "; nothing is rendered, its files keep their last good version"
}

// fileChange renders one template from the old binding and manifest and
// from the new ones, and diffs them. An old render that fails (or none,
// for a new template) counts as an empty file.
func (s *sides) fileChange(ctx context.Context, r Renderer, h hosting, old, m *manifest.Manifest, name string) (FileChange, error) {
	spec := m.Templates[name]
	fc := FileChange{Template: name, Destination: spec.Destination}
	// The files are rendered from real values, so that the diff shows what
	// changes; the values the redaction policy hides are masked in it (and
	// in an error, which may quote the template's data).
	secrets := slices.Concat(h.after.Secrets(), secretsOf(h.before))
	after, err := renderOne(ctx, r, m, h.after, name, spec)
	if err != nil {
		fc.Error = redact.Text(err.Error(), secrets)
		return fc, nil
	}
	var before []byte
	if oldSpec, ok := templateOf(old, name); ok && h.before != nil && h.before.Ready() {
		before, _ = renderOne(ctx, r, old, h.before, name, oldSpec)
	}
	if fc.Diff, err = templates.Diff(before, after, spec.Destination); err != nil {
		return fc, fmt.Errorf("plan: diff %s of %s: %w", name, m.ID, err)
	}
	fc.Diff = redact.Text(fc.Diff, secrets)
	if fc.Diff != "" {
		fc.Reload = spec.Reload
	}
	return fc, nil
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

func renderOne(ctx context.Context, r Renderer, m *manifest.Manifest, b *binding.Binding, name string, spec manifest.TemplateFile) ([]byte, error) {
	contents, err := templates.Contents(spec)
	if err != nil {
		return nil, err
	}
	minUp := manifest.DefaultTemplateMin
	if spec.Min != nil {
		minUp = *spec.Min
	}
	return r.Render(ctx, name, contents, templates.Data{
		Service: m.ID, Federation: fedOf(m.Federation), Region: b.Region,
		Environment: m.Environment, Binding: b, Options: spec.Options, Min: minUp,
	})
}

func distinctReloads(runs []ServiceRun) [][]string {
	var out [][]string
	for _, run := range runs {
		for _, f := range run.Files {
			if len(f.Reload) > 0 && !slices.ContainsFunc(out, func(c []string) bool { return slices.Equal(c, f.Reload) }) {
				out = append(out, f.Reload)
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
		old[svcKey{fedOf(m.Federation), m.ID}] = m
	}
	var notes []string
	for i := range after.Manifests {
		m := &after.Manifests[i]
		o := old[svcKey{fedOf(m.Federation), m.ID}]
		if o != nil && (!maps.Equal(o.Provides, m.Provides) || o.Public != m.Public) {
			notes = append(notes, fmt.Sprintf("%s (federation %s): its provides change, but live instances publish the values they registered with until they register again; this plan binds those", m.ID, fedOf(m.Federation)))
		}
	}
	return notes
}

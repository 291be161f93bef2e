package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/plan"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// errChanges is plan's and impact's "something would change": exit 3, so
// that scripts tell it from no change (0), bad input (1) and an
// unreachable backend (2), as terraform's -detailed-exitcode does.
var errChanges = errors.New("changes pending")

type planFlags struct {
	datastores []string
	nodes      []string // --node-config
	asJSON     bool
	format     string // text, json or markdown (plan_markdown.go)
}

func newPlanCmd(a *app) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "plan PATH... [--datastore KEY=VALUE]...",
		Short: "Show what publishing these manifests would change, before publishing",
		Long: `Plan resolves the cluster as if the manifests and datastores files in PATHs
(and every --datastore KEY=VALUE, in the --federation) were published, against
the live registry, and prints what would change: per service and region the
bindings before → after (and why anything becomes unresolved), load-balancer
routes that lose upstreams, which nodes would re-render which files (a unified
diff of each template rendered from the old and the new binding), which
reload and provision commands would run, and which rollout groups would roll.
Nothing is written.

Nodes are those running an instance of a service, plus those whose last
recorded status names it (load balancers often register no instance), plus
those of every --node-config listener.yaml. A node's run is the listener's
own run model: its templates render with the node's region, a policy-withheld
provider is evicted from a file that routes to it, an HAProxy with the
runtime API changes servers without a reload, and listener.yaml's provision
command replaces the manifest's (known only from --node-config). What a node
has installed is taken to be the render of the old binding.

--format markdown prints the plan as a pull-request comment: a summary line,
the bindings that change, routes left without upstreams in bold, and each
node's diffs in collapsible sections, cut to fit a comment with a note saying
what was left out (examples/ci runs it on every pull request).

Exit status: 0 nothing would change, 3 something would change, 1 bad input,
2 Consul unreachable.`,
		Example: `  patchbay plan services/app-www
  patchbay plan services --format markdown > plan.md
  patchbay plan examples/services --datastore PRIMARY_DATABASE_URL=postgres://db2/app --json`,
		Args: namedArgs("PATH..."),
		RunE: func(cmd *cobra.Command, paths []string) error {
			format, err := f.outputFormat()
			if err != nil {
				return err
			}
			set, err := a.loadForPlan(paths)
			if err != nil {
				return err
			}
			p, err := a.publishPlan(cmd.Context(), set, f.datastores, f.nodes)
			if err != nil {
				return err
			}
			if format == formatMarkdown {
				return a.showPlanMarkdown(p)
			}
			return a.showPlan(p, format == formatJSON)
		},
	}
	cmd.Flags().StringArrayVar(&f.datastores, "datastore", nil, "also set datastore KEY=VALUE (repeatable)")
	nodeConfigFlag(cmd, &f.nodes)
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the plan as JSON (--format json)")
	cmd.Flags().StringVar(&f.format, "format", formatText, "text, json, or markdown: a pull-request comment, within GitHub's 65,536 characters")
	return cmd
}

// loadForPlan loads and validates PATHs, reporting every problem.
func (a *app) loadForPlan(paths []string) (*manifest.Set, error) {
	set, probs, err := loadManifests(paths)
	if len(probs) > 0 {
		a.printValidation(validateReport{Problems: probs}, "")
		return nil, alreadyReported{probs}
	}
	return set, err
}

// showPlan prints p and turns "something changes" into exit 3.
func (a *app) showPlan(p *plan.Plan, asJSON bool) error {
	var err error
	if asJSON {
		err = a.printJSON(p)
	} else {
		err = p.WriteText(a.stdout)
	}
	if err != nil {
		return err
	}
	if p.Changed() {
		return alreadyReported{errChanges}
	}
	return nil
}

// publishPlan computes the plan of publishing set and the extra
// datastore values against the live registry.
func (a *app) publishPlan(ctx context.Context, set *manifest.Set, extra, nodeConfigs []string) (*plan.Plan, error) {
	ds, err := datastoreValues(set, extra, a.g.Federation)
	if err != nil {
		return nil, err
	}
	var ms []manifest.Manifest
	for _, s := range set.Services {
		ms = append(ms, s.Manifest)
	}
	return a.computePlan(ctx, nodeConfigs, func(snap *binding.Snapshot, opts []plan.Option) (*plan.Plan, error) {
		return plan.Compute(ctx, snap, plan.Publish(snap, ms, ds), opts...)
	})
}

// datastoreValues gathers the datastores files' values and KEY=VALUE flags.
func datastoreValues(set *manifest.Set, extra []string, fed string) ([]binding.Datastore, error) {
	var out []binding.Datastore
	for _, f := range set.Datastores {
		for _, k := range slices.Sorted(maps.Keys(f.Datastores.Values)) {
			out = append(out, binding.Datastore{Federation: f.Datastores.Federation, Key: k, Value: f.Datastores.Values[k]})
		}
	}
	for _, kv := range extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !manifest.IsKeyName(k) {
			return nil, usageErrorf("--datastore %q: want KEY=VALUE with an upper-case KEY", kv)
		}
		out = append(out, binding.Datastore{Federation: fed, Key: k, Value: v})
	}
	return out, nil
}

// computePlan reads the registry once and runs compute on it with the
// options that render templates with the registry's lookups.
func (a *app) computePlan(ctx context.Context, nodeConfigs []string, compute func(*binding.Snapshot, []plan.Option) (*plan.Plan, error)) (*plan.Plan, error) {
	nodes, err := a.nodeHosts(nodeConfigs)
	if err != nil {
		return nil, err
	}
	reg, err := a.registry()
	if err != nil {
		return nil, err
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	opts, closeFn, err := a.planOptions(ctx, reg, snap)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return compute(snap, append([]plan.Option{plan.WithHosts(nodes)}, opts...)) // first: they carry listener.yaml's provision
}

// planOptions are the renderer (with Consul lookups) and the nodes that
// host services without instances, from their recorded statuses.
func (a *app) planOptions(ctx context.Context, reg *registry.Client, snap *binding.Snapshot) ([]plan.Option, func(), error) {
	statuses, _, err := reg.Statuses(ctx)
	if err != nil {
		return nil, nil, err
	}
	lookups, err := reg.Lookups()
	if err != nil {
		return nil, nil, err
	}
	r := templates.NewRenderer(templates.WithFetcher(lookups), templates.WithFetchTimeout(a.g.Timeout), templates.WithLogger(a.logger()))
	return []plan.Option{plan.WithRenderer(r), plan.WithHosts(hostsOf(statuses, snap))}, func() { lookups.Close() }, nil
}

// hostsOf lists the services each node's last status names, in the
// region the node's instances run in.
func hostsOf(statuses []registry.Status, snap *binding.Snapshot) []plan.Host {
	region := map[string]string{}
	for _, in := range snap.Instances {
		region[in.Node] = in.Region
	}
	var out []plan.Host
	for _, s := range statuses {
		fed := manifest.FederationOf(s.Federation)
		for _, svc := range slices.Sorted(maps.Keys(s.Details)) {
			out = append(out, plan.Host{Node: s.Node, Federation: fed, Service: svc, Region: region[s.Node]})
		}
	}
	return out
}

// confirmPlan shows the plan of publishing set and asks, unless yes;
// false means the user declined.
func (a *app) confirmPlan(cmd *cobra.Command, set *manifest.Set, yes bool) (bool, error) {
	p, err := a.publishPlan(cmd.Context(), set, nil, nil)
	if err != nil {
		return false, err
	}
	if err := p.WriteText(a.stdout); err != nil {
		return false, err
	}
	if yes {
		return true, nil
	}
	fmt.Fprint(a.stdout, "publish? [y/N] ")
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return false, nil // no answer (end of input) is no
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/plan"
)

func newImpactCmd(a *app) *cobra.Command {
	var asJSON bool
	var nodes []string
	cmd := &cobra.Command{
		Use:   "impact node NODE | impact instance ID",
		Short: "Show what would break if a node or an instance went away",
		Long: `Impact resolves the cluster as if every instance on NODE (or the one
instance ID) were gone, and prints what would change: what the node's
listener stops rendering (every service it hosts, a load balancer's
included, and which other nodes still render it), requirements that move
to another provider, fall back to a datastore or become unresolved (and
why), load-balancer routes that lose upstreams (or are left empty), unique
services that fail over, and what the remaining nodes would re-render and
run. Nothing is written.

Exit status: 0 nothing would change, 3 something would change, 1 bad input
(no such node or instance), 2 Consul unreachable.`,
		Example: `  patchbay impact node web-3
  patchbay impact instance api@api-1:8080 --json`,
		Args:      namedArgs("node|instance", "NODE|ID"),
		ValidArgs: []string{"node", "instance"},
		RunE: func(cmd *cobra.Command, args []string) error {
			var compute func(*binding.Snapshot, []plan.Option) (*plan.Plan, error)
			switch args[0] {
			case "node":
				compute = func(snap *binding.Snapshot, opts []plan.Option) (*plan.Plan, error) {
					return plan.ImpactNode(cmd.Context(), snap, args[1], opts...)
				}
			case "instance":
				compute = func(snap *binding.Snapshot, opts []plan.Option) (*plan.Plan, error) {
					return plan.Impact(cmd.Context(), snap, func(in binding.Instance) bool { return in.ID == args[1] }, opts...)
				}
			default:
				return usageErrorf("impact %q: say 'impact node NODE' or 'impact instance ID'", args[0])
			}
			p, err := a.computePlan(cmd.Context(), nodes, compute)
			if err != nil {
				return err
			}
			if len(p.Removed) == 0 && len(p.Unhosted) == 0 {
				if args[0] == "node" {
					return usageErrorf("nothing runs on node %s: no live instance there and no recorded status of it in the registry", args[1])
				}
				return usageErrorf("no live instance matches %s %s in the registry", args[0], args[1])
			}
			return a.showPlan(p, asJSON)
		},
	}
	nodeConfigFlag(cmd, &nodes)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the impact as JSON")
	return cmd
}

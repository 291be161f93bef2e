package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// snapshot reads the registry for the inspection commands.
func (a *app) snapshot(ctx context.Context) (*binding.Snapshot, error) {
	reg, err := a.registry()
	if err != nil {
		return nil, err
	}
	snap, err := reg.Snapshot(ctx)
	if errors.Is(err, registry.ErrPermissionDenied) {
		// A token scoped to its federation (docs/security.md's policy for people and
		// CI) reads that federation alone, which is all a binding draws on.
		fsnap, ferr := reg.FederationSnapshot(ctx, a.g.Federation)
		switch {
		case ferr == nil:
			snap, err = fsnap, nil
		case errors.Is(ferr, registry.ErrPermissionDenied):
			err = ferr
		}
	}
	if err != nil {
		return nil, err
	}
	for _, s := range snap.Skipped {
		fmt.Fprintf(a.stderr, "warning: skipped unreadable %s: %s\n", registry.ShownKey(s.Key), s.Reason)
	}
	return snap, nil
}

// deniedOr returns err, a service missing from the snapshot, unless the
// reason it is missing is the ACL token: Consul leaves out of a list what
// the token may not read, without a 403, so an empty registry and a denied
// one look alike until the service's own key is read.
func (a *app) deniedOr(ctx context.Context, service string, err error) error {
	reg, rerr := a.registry()
	if rerr != nil {
		return err
	}
	if _, rerr := reg.Manifest(ctx, a.g.Federation, service); errors.Is(rerr, registry.ErrPermissionDenied) {
		return rerr
	}
	return err
}

func newResolveCmd(a *app) *cobra.Command {
	var (
		region      string
		asJSON      bool
		showSecrets bool
	)
	cmd := &cobra.Command{
		Use:   "resolve SERVICE [--region R] [--show-secrets]",
		Short: "Show the bindings a node of SERVICE gets now",
		Long: `Resolve reads the registry and shows what every requirement of SERVICE (in
the --federation) binds to for a node in --region: the value, where it comes
from, and for anything unresolved, why. It computes this live, so it works
whether or not a resolver is running.

Values from datastores (often credentials) and of variables and keys whose
names look secret (PASSWORD, SECRET, TOKEN, KEY, ...) are masked, and so
are the passwords of URLs, in --json too: the policy plan, impact and the
console follow. --show-secrets prints them.`,
		Example: "  patchbay resolve app-www --region eu-1",
		Args:    namedArgs("SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			snap, err := a.snapshot(cmd.Context())
			if err != nil {
				return err
			}
			b, err := bindingFor(snap, a.g.Federation, args[0], region)
			if err != nil {
				return a.deniedOr(cmd.Context(), args[0], err)
			}
			if !showSecrets {
				b = b.Redacted()
			}
			if asJSON {
				return a.printJSON(b)
			}
			printBinding(a.stdout, b)
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "region of the node (default: none)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the binding as JSON, as stored for listeners")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secret values and URL passwords instead of masking them")
	return cmd
}

// bindingFor resolves one service's binding for region, falling back to
// the region-less binding as listeners do.
func bindingFor(snap *binding.Snapshot, fed, service, region string) (*binding.Binding, error) {
	res := resolver.Resolve(snap)
	for _, r := range binding.ReadRegions(region) {
		if b, ok := res.Lookup(fed, service, r); ok {
			b.Region = region
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: service %s is not published in federation %s", registry.ErrNotFound, service, fed)
}

func printBinding(w io.Writer, b *binding.Binding) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "VAR\tVALUE\tFROM\n")
	for _, name := range sortedVarNames(b.Vars) {
		v := b.Vars[name]
		value := v.Value
		if !v.Resolved {
			value = "(unresolved)"
			if v.Optional {
				value = "(unresolved, optional: empty)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, value, providersText(v.Providers))
	}
	tw.Flush()
	for _, u := range b.Unresolved {
		fmt.Fprintf(w, "unresolved %s (%s): %s\n", u.Var, u.Key, u.Reason)
	}
	if !b.Ready() {
		fmt.Fprintln(w, "files that need the unresolved variables keep their last good version")
	}
}

func providersText(ps []binding.Provider) string {
	var out []string
	for _, p := range ps {
		if p.Datastore {
			out = append(out, "datastore "+p.Key)
		} else {
			out = append(out, p.Instance+" "+p.Key)
		}
	}
	if len(out) > 3 {
		return fmt.Sprintf("%s, … (%d providers)", strings.Join(out[:3], ", "), len(out))
	}
	return strings.Join(out, ", ")
}

func sortedVarNames(m map[string]binding.Var) []string { return slices.Sorted(maps.Keys(m)) }

func newExplainCmd(a *app) *cobra.Command {
	var (
		region      string
		asJSON      bool
		showSecrets bool
	)
	cmd := &cobra.Command{
		Use:   "explain SERVICE VAR [--region R] [--show-secrets]",
		Short: "Explain how one requirement of SERVICE was bound",
		Long: `Explain lists every candidate for VAR of SERVICE — every live instance and
datastore, in any federation, that offers a key the requirement draws on —
and says why each was kept or dropped and which one won. Secret values are
masked as in resolve unless --show-secrets.`,
		Example: "  patchbay explain app-www API_URL --region eu-1",
		Args:    namedArgs("SERVICE", "VAR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			snap, err := a.snapshot(cmd.Context())
			if err != nil {
				return err
			}
			x, err := resolver.Explain(snap, a.g.Federation, args[0], region, args[1])
			if errors.Is(err, resolver.ErrUnknownService) {
				if err := a.deniedOr(cmd.Context(), args[0], nil); err != nil {
					return err
				}
			}
			if errors.Is(err, resolver.ErrUnknownService) || errors.Is(err, resolver.ErrUnknownVar) {
				return usageErrorf("%w", err)
			}
			if err != nil {
				return err
			}
			if !showSecrets {
				x = x.Redacted()
			}
			if asJSON {
				return a.printJSON(x)
			}
			printExplanation(a.stdout, x)
			return nil
		},
	}
	cmd.Flags().StringVar(&region, "region", "", "region of the node (default: none)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print secret values and URL passwords instead of masking them")
	return cmd
}

func printExplanation(w io.Writer, x *resolver.Explanation) {
	r := x.Requirement
	what := r.Key
	if what == "" {
		what = r.Template
	}
	fmt.Fprintf(w, "%s of %s (federation %s, region %q): %s, select %s, region %s%s%s\n",
		x.Var, x.Service, x.Federation, x.Region, what, r.Select, r.Region, flag(r.Public, ", public only"), flag(r.Optional, ", optional"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\tCANDIDATE\tKEY\tVALUE\tWHY\n")
	for _, c := range x.Candidates {
		mark, name := " ", c.Instance
		if c.Kept {
			mark = "✓"
		}
		if c.Datastore {
			name = "datastore (" + c.Federation + ")"
		} else if c.Federation != x.Federation {
			name += " (" + c.Federation + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, name, c.Key, c.Value, c.Reason)
	}
	tw.Flush()
	if x.Result.Resolved {
		fmt.Fprintf(w, "result: %s\n", x.Result.Value)
	} else {
		fmt.Fprintf(w, "result: unresolved: %s\n", x.Reason)
	}
}

func flag(on bool, text string) string {
	if on {
		return text
	}
	return ""
}

// manifestsFrom reads manifests from PATHs when given, else from Consul.
func (a *app) manifestsFrom(ctx context.Context, paths []string) ([]manifest.Manifest, error) {
	if len(paths) > 0 {
		set, err := manifest.Load(paths...)
		if err != nil {
			return nil, err
		}
		var ms []manifest.Manifest
		for _, s := range set.Services {
			ms = append(ms, s.Manifest)
		}
		return ms, nil
	}
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return snap.Manifests, nil
}

func newGraphCmd(a *app) *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "graph [PATH...] [--format dot|json | --json]",
		Short: "Print the service dependency graph",
		Long: `Graph draws an edge from each service to every service that provides a key
it requires, labelled with that key, from the published manifests and
datastores (or from PATHs, without Consul). Datastores are cylinders with
dashed edges from the requirements that fall back to them. Services on a
dependency cycle are drawn red.`,
		Example: "  patchbay graph | dot -Tsvg > graph.svg\n  patchbay graph examples/services --json",
		RunE: func(cmd *cobra.Command, paths []string) error {
			if asJSON {
				if cmd.Flags().Changed("format") && format != "json" {
					return usageErrorf("--json and --format %s disagree; give one of them", format)
				}
				format = "json"
			}
			g, err := a.graphFrom(cmd.Context(), paths)
			if err != nil {
				return err
			}
			switch format {
			case "dot":
				return g.WriteDOT(a.stdout)
			case "json":
				return a.printJSON(g)
			default:
				return usageErrorf("--format %q: use dot or json", format)
			}
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "output format: dot (graphviz) or json")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, as every reporting command does: the same as --format json")
	return cmd
}

func newOrderCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "order [PATH...]",
		Short: "Print the order to bring services up in, providers first",
		Long: `Order sorts the services so that every service comes after the services it
requires. With a dependency cycle there is no such order: it fails (exit 1)
and prints the cycle.`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			ms, err := a.manifestsFrom(cmd.Context(), paths)
			if err != nil {
				return err
			}
			order, err := resolver.BuildGraph(ms).Order()
			if err != nil {
				return usageErrorf("%w", err)
			}
			if asJSON {
				return a.printJSON(order)
			}
			for i, s := range order {
				fmt.Fprintf(a.stdout, "%d. %s\n", i+1, s)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON list")
	return cmd
}

package main

import (
	"cmp"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

type publishResult struct {
	Kind       string   `json:"kind"` // "service" or "datastores"
	Name       string   `json:"name"`
	Federation string   `json:"federation"`
	Changed    bool     `json:"changed"`
	Keys       []string `json:"changed_keys,omitempty"`
}

func newPublishCmd(a *app) *cobra.Command {
	var (
		asJSON, withPlan, yes, wait bool
		wo                          waitOptions
	)
	cmd := &cobra.Command{
		Use:   "publish PATH...",
		Short: "Validate manifests and datastores files and store them in Consul",
		Long: `Publish validates like 'patchbay validate' and, only when everything is
valid, stores each normalized manifest and datastore value in Consul.
A required key that no manifest given or published provides and no
datastore holds is a warning on stderr (a typo, usually: it names the
closest known key); it does not stop the publish.

Writes use check-and-set: if two people publish the same service at the same
moment, one of them gets a conflict (exit 1) instead of silently losing the
other's change. Publishing identical content writes nothing. Datastore keys a
file does not name are left alone; remove one with 'patchbay datastore rm'.

--plan first prints what publishing would change ('patchbay plan') and asks
for a yes on stdin; --yes skips the question. A no publishes nothing (exit 1).

--wait then follows the change to every node, like 'patchbay wait': until
the resolver stored the bindings it alters and every node hosting them
applied them (exit 0), a node failed (4) or --wait-timeout passed (5).`,
		Example: `  patchbay publish examples/services
  patchbay publish services/app-www --json
  patchbay publish --plan services/app-www
  patchbay publish services/app-www --wait --wait-timeout 5m   # in CI, after merge`,
		Args: namedArgs("PATH..."),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was published as JSON")
	cmd.Flags().BoolVar(&withPlan, "plan", false, "first show what publishing would change (patchbay plan) and ask")
	cmd.Flags().BoolVar(&yes, "yes", false, "with --plan: publish without asking")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every node hosting a changed binding applied it (see patchbay wait)")
	addWaitFlags(cmd, &wo)
	cmd.RunE = func(cmd *cobra.Command, paths []string) error {
		set, probs, err := loadManifests(paths)
		if err != nil {
			return err
		}
		if len(probs) > 0 {
			a.printValidation(validateReport{Problems: probs}, "; nothing was published")
			return alreadyReported{fmt.Errorf("nothing published: %w", probs)}
		}
		a.printWarnings(a.unprovided(cmd.Context(), set, a.g.Timeout))
		if withPlan {
			if ok, err := a.confirmPlan(cmd, set, yes); err != nil || !ok {
				return cmp.Or(err, usageErrorf("publish cancelled: nothing published"))
			}
		}
		reg, err := a.registry()
		if err != nil {
			return err
		}
		var before *changeBase
		if wait {
			if before, err = a.beforeChange(cmd.Context()); err != nil {
				return err
			}
		}
		since := time.Now()
		var results []publishResult
		for _, s := range set.Services {
			changed, err := reg.Publish(cmd.Context(), &s.Manifest)
			if err != nil {
				return err
			}
			results = append(results, publishResult{Kind: "service", Name: s.Manifest.ID, Federation: s.Manifest.Federation, Changed: changed})
		}
		for _, d := range set.Datastores {
			keys, err := reg.PublishDatastores(cmd.Context(), &d.Datastores)
			if err != nil {
				return err
			}
			results = append(results, publishResult{Kind: "datastores", Name: d.File, Federation: d.Datastores.Federation, Changed: len(keys) > 0, Keys: keys})
		}
		if err := a.printPublished(results, asJSON, wait); err != nil || !wait {
			return err
		}
		wo.asJSON = asJSON
		return a.followChange(cmd.Context(), before, since, wo)
	}
	return cmd
}

// printPublished prints what was published: JSON, or one JSON line that
// the wait's lines follow.
func (a *app) printPublished(results []publishResult, asJSON, wait bool) error {
	switch {
	case asJSON && wait:
		newWaitPrinter(a.stdout, a.stderr, true).line(waitLine{Type: "published", Published: results})
		return nil
	case asJSON:
		return a.printJSON(results)
	}
	for _, r := range results {
		verb := "unchanged"
		if r.Changed {
			verb = "published"
		}
		fmt.Fprintf(a.stdout, "%-9s %s %s (federation %s)\n", verb, r.Kind, r.Name, r.Federation)
	}
	return nil
}

func newUnpublishCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unpublish SERVICE",
		Short: "Remove a service's manifest from Consul",
		Long: `Unpublish deletes the manifest of SERVICE in the --federation. Running
instances keep running, but the resolver stops binding anything to them.`,
		Args: namedArgs("SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			if err := reg.Unpublish(cmd.Context(), a.g.Federation, args[0]); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(map[string]string{"federation": a.g.Federation, "service": args[0], "result": "unpublished"})
			}
			fmt.Fprintf(a.stdout, "unpublished service %s (federation %s)\n", args[0], a.g.Federation)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"federation", "service", "result"} as JSON`)
	return cmd
}

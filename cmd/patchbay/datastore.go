package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// datastoreResult is the --json output of datastore set and rm.
type datastoreResult struct {
	Federation string `json:"federation"`
	Key        string `json:"key"`
	Changed    bool   `json:"changed"` // set: the value differed; rm: it existed (rm of a missing key fails)
}

// datastoreEntry is one item of datastore list --json.
type datastoreEntry struct {
	Federation string `json:"federation"`
	Key        string `json:"key"`
	Value      string `json:"value,omitempty"`
}

func newDatastoreCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datastore",
		Short: "Manage static providers: values for things outside the cluster",
		Long: `A datastore is a static provider of a key, such as a managed database's URL.
Requirements bind to it when no live instance provides the key. Datastores
belong to the --federation.`,
	}
	var asJSON bool
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a datastore value",
		Args:  namedArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			v, err := reg.Datastore(cmd.Context(), a.g.Federation, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(map[string]string{"federation": a.g.Federation, "key": args[0], "value": v})
			}
			_, err = fmt.Fprintln(a.stdout, v)
			return err
		},
	}
	var (
		wait bool
		wo   waitOptions
	)
	set := &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Set a datastore value",
		Long: `Set stores a datastore value. --wait then follows the change to every node,
like 'patchbay wait' (exit 0 applied, 4 a node failed, 5 --wait-timeout).`,
		Example: "  patchbay datastore set PRIMARY_DATABASE_URL postgres://db.internal:5432/app\n  patchbay datastore set PRIMARY_DATABASE_URL postgres://db2.internal:5432/app --wait",
		Args:    namedArgs("KEY", "VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			changed, err := reg.SetDatastore(cmd.Context(), a.g.Federation, args[0], args[1])
			if err != nil {
				return err
			}
			if wait {
				if asJSON {
					newWaitPrinter(a.stdout, a.stderr, true).line(waitLine{Type: "published", Published: datastoreResult{Federation: a.g.Federation, Key: args[0], Changed: changed}})
				}
				wo.asJSON = asJSON
				return a.followChange(cmd.Context(), before, since, wo)
			}
			if asJSON {
				return a.printJSON(datastoreResult{Federation: a.g.Federation, Key: args[0], Changed: changed})
			}
			verb := "unchanged"
			if changed {
				verb = "set"
			}
			fmt.Fprintf(a.stdout, "%s datastore %s (federation %s)\n", verb, args[0], a.g.Federation)
			return nil
		},
	}
	rm := &cobra.Command{
		Use:   "rm KEY",
		Short: "Remove a datastore value",
		Args:  namedArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			if err := reg.DeleteDatastore(cmd.Context(), a.g.Federation, args[0]); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(datastoreResult{Federation: a.g.Federation, Key: args[0], Changed: true})
			}
			fmt.Fprintf(a.stdout, "removed datastore %s (federation %s)\n", args[0], a.g.Federation)
			return nil
		},
	}
	for _, c := range []*cobra.Command{get, set, rm} {
		c.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	}
	set.Flags().BoolVar(&wait, "wait", false, "wait until every node hosting a binding the value changes applied it (see patchbay wait)")
	addWaitFlags(set, &wo)
	cmd.AddCommand(get, set, rm, newDatastoreListCmd(a))
	return cmd
}

func newDatastoreListCmd(a *app) *cobra.Command {
	var asJSON, values bool
	cmd := &cobra.Command{
		Use:   "list [--values] [--json]",
		Short: "List the datastore keys of the federation",
		Long: `List prints the datastore keys of the --federation, one a line. Values are
often credentials (a database URL with its password), so they are shown only
with --values.`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			snap, err := a.snapshot(cmd.Context())
			if err != nil {
				return err
			}
			list := []datastoreEntry{}
			for _, d := range snap.Datastores {
				if d.Federation == a.g.Federation {
					e := datastoreEntry{Federation: d.Federation, Key: d.Key}
					if values {
						e.Value = d.Value
					}
					list = append(list, e)
				}
			}
			slices.SortFunc(list, func(x, y datastoreEntry) int { return strings.Compare(x.Key, y.Key) })
			if asJSON {
				return a.printJSON(list)
			}
			for _, d := range list {
				if values {
					fmt.Fprintf(a.stdout, "%s=%s\n", d.Key, d.Value)
				} else {
					fmt.Fprintln(a.stdout, d.Key)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print [{"federation", "key", "value"}] as JSON ("value" only with --values)`)
	cmd.Flags().BoolVar(&values, "values", false, "print the values too (KEY=VALUE)")
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

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
		Args:  cobra.ExactArgs(1),
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
	get.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	set := &cobra.Command{
		Use:     "set KEY VALUE",
		Short:   "Set a datastore value",
		Example: "  patchbay datastore set PRIMARY_DATABASE_URL postgres://db.internal:5432/app",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			changed, err := reg.SetDatastore(cmd.Context(), a.g.Federation, args[0], args[1])
			if err != nil {
				return err
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
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry()
			if err != nil {
				return err
			}
			if err := reg.DeleteDatastore(cmd.Context(), a.g.Federation, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed datastore %s (federation %s)\n", args[0], a.g.Federation)
			return nil
		},
	}
	cmd.AddCommand(get, set, rm)
	return cmd
}

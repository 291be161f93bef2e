package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/manifest"
)

type validateReport struct {
	Valid      bool                     `json:"valid"`
	Services   []validatedService       `json:"services"`
	Datastores []manifest.DatastoreFile `json:"datastores"`
	Problems   manifest.Problems        `json:"problems"`
}

type validatedService struct {
	ID         string   `json:"id"`
	Federation string   `json:"federation"`
	Files      []string `json:"files"`
}

func newValidateCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check manifests and datastores files without touching Consul",
		Long: `Validate parses, merges and checks manifests and reports every problem of
every file as file:line:column: what is wrong.

A PATH that is a file stands alone. A directory is walked: the .yaml, .yml,
.json and .toml files directly in each directory are one service's fragments,
merged in lexical order (00-defaults.yaml, then 10-app.yaml), later keys
winning. A file with a top-level "datastores" key is a datastores file.

Exit status: 0 when everything is valid, 1 when anything is not.`,
		Example: `  patchbay validate examples/services
  patchbay validate --json services/app-www`,
		Args: namedArgs("PATH..."),
	}
	cmd.RunE = func(_ *cobra.Command, paths []string) error {
		set, err := manifest.Load(paths...)
		var probs manifest.Problems
		if err != nil && !errors.As(err, &probs) {
			return fmt.Errorf("validate: %w", err)
		}
		report := validateReport{Valid: len(probs) == 0, Datastores: set.Datastores, Problems: probs}
		for _, s := range set.Services {
			report.Services = append(report.Services, validatedService{ID: s.Manifest.ID, Federation: s.Manifest.Federation, Files: s.Files})
		}
		if asJSON {
			if err := a.printJSON(report); err != nil {
				return err
			}
		} else {
			a.printValidation(report, "")
		}
		if len(probs) > 0 {
			return alreadyReported{probs}
		}
		return nil
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON: valid, services, datastores, problems (file, line, column, message)")
	return cmd
}

// printValidation prints what was valid and every problem; note follows
// the problem count.
func (a *app) printValidation(r validateReport, note string) {
	for _, s := range r.Services {
		fmt.Fprintf(a.stdout, "ok   service %s (federation %s): %s\n", s.ID, s.Federation, strings.Join(s.Files, ", "))
	}
	for _, d := range r.Datastores {
		fmt.Fprintf(a.stdout, "ok   datastores (federation %s, %d keys): %s\n", d.Datastores.Federation, len(d.Datastores.Values), d.File)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(a.stderr, p.Error())
	}
	if n := len(r.Problems); n > 0 {
		fmt.Fprintf(a.stderr, "%d %s found%s\n", n, plural(n, "problem", "problems"), note)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

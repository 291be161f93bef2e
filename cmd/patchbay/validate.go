package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

type validateReport struct {
	Valid      bool                     `json:"valid"`
	Services   []validatedService       `json:"services"`
	Datastores []manifest.DatastoreFile `json:"datastores"`
	Problems   manifest.Problems        `json:"problems"`
	// Warnings do not make the input invalid: a required key nothing
	// provides yet.
	Warnings manifest.Problems `json:"warnings"`
	// WarningsNote says what the warnings could not take into account.
	WarningsNote string `json:"warnings_note,omitempty"`
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
		Short: "Check manifests, their templates and datastores files; nothing is written",
		Long: `Validate parses, merges and checks manifests and reports every problem of
every file as file:line:column: what is wrong.

Every template is parsed as a listener would parse it (inline contents,
builtins, and source files that exist here), without executing it; one that
does not parse is a problem at its manifest line, naming the template's own
line.

A requirement on a key that nothing provides (no manifest given or
published, no datastore) is a warning, not a problem, with the closest known
key ("did you mean"). Validate reads the published manifests from Consul
when it answers within 2s; otherwise it compares with the files given and
says so.

A PATH that is a file stands alone. A directory is walked: the .yaml, .yml,
.json and .toml files directly in each directory are one service's fragments,
merged in lexical order (00-defaults.yaml, then 10-app.yaml), later keys
winning. A file with a top-level "datastores" key is a datastores file.

Exit status: 0 when everything is valid (warnings or not), 1 when anything
is not.`,
		Example: `  patchbay validate examples/services
  patchbay validate --json services/app-www`,
		Args: namedArgs("PATH..."),
	}
	cmd.RunE = func(cmd *cobra.Command, paths []string) error {
		set, err := manifest.Load(paths...)
		var probs manifest.Problems
		if err != nil && !errors.As(err, &probs) {
			return fmt.Errorf("validate: %w", err)
		}
		warnings, note := a.unprovided(cmd.Context(), set, validateConsulWait)
		probs = sortProblems(append(probs, manifest.CheckTemplates(set, templates.ParseFile)...))
		probs = sortProblems(append(probs, a.localPortConflicts(cmd.Context(), set)...)) // validate_local.go
		report := validateReport{Valid: len(probs) == 0, Datastores: set.Datastores, Problems: probs, Warnings: warnings}
		if len(warnings) > 0 {
			report.WarningsNote = note
		}
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

// validateConsulWait bounds validate's look at the published manifests:
// validate works without Consul, and a CI runner often has none.
const validateConsulWait = 2 * time.Second

// loadManifests loads and validates PATHs as publish and plan do: every
// problem of every file, then every template that does not parse (a
// template only a host can read is left to it).
func loadManifests(paths []string) (*manifest.Set, manifest.Problems, error) {
	set, err := manifest.Load(paths...)
	var probs manifest.Problems
	if err != nil && !errors.As(err, &probs) {
		return set, nil, err
	}
	probs = append(probs, manifest.LocalPortConflicts(set, nil)...)
	return set, sortProblems(append(probs, manifest.CheckTemplates(set, templates.ParseFile)...)), nil
}

func sortProblems(probs manifest.Problems) manifest.Problems {
	slices.SortStableFunc(probs, func(a, b manifest.Problem) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return probs
}

// unprovided warns about required keys that neither set nor Consul
// provides. Consul is asked for at most wait; without an answer, note says
// that only the manifests given were compared.
func (a *app) unprovided(ctx context.Context, set *manifest.Set, wait time.Duration) (warnings manifest.Problems, note string) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	published, err := a.publishedKeys(ctx)
	if err != nil {
		a.logger().Debug("published keys not read", "err", err)
		note = fmt.Sprintf("required keys were compared with the files given only: Consul at %s did not answer with the published ones", a.g.ConsulAddr)
	}
	return manifest.Unprovided(set, published), note
}

// publishedKeys are the keys published manifests provide and the datastore
// keys Consul holds (names only: values never leave the snapshot).
func (a *app) publishedKeys(ctx context.Context) ([]string, error) {
	reg, err := a.registry()
	if err != nil {
		return nil, err
	}
	snap, err := reg.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, m := range snap.Manifests {
		keys = slices.AppendSeq(keys, maps.Keys(m.Provides))
	}
	for _, d := range snap.Datastores {
		keys = append(keys, d.Key)
	}
	return keys, nil
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
	a.printWarnings(r.Warnings, r.WarningsNote)
	for _, p := range r.Problems {
		fmt.Fprintln(a.stderr, p.Error())
	}
	if n := len(r.Problems); n > 0 {
		fmt.Fprintf(a.stderr, "%d %s found%s\n", n, plural(n, "problem", "problems"), note)
	}
}

// printWarnings prints each warning as file:line:column: warning: message,
// and note, when there is one, on a line of its own.
func (a *app) printWarnings(ws manifest.Problems, note string) {
	for _, w := range ws {
		w.Message = "warning: " + w.Message
		fmt.Fprintln(a.stderr, w.Error())
	}
	if len(ws) > 0 && note != "" {
		fmt.Fprintln(a.stderr, "note: "+note)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

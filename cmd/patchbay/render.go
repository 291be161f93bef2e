package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

type renderFlags struct {
	service, template, out, region string
	diff, dryRun, asJSON, reload   bool
}

// renderResult is what render --json prints.
type renderResult struct {
	Destination string `json:"destination"`
	Changed     bool   `json:"changed"`
	Reloaded    bool   `json:"reloaded"`
	Diff        string `json:"diff,omitempty"`
	// NotReloaded says why a changed file's reload did not run.
	NotReloaded string `json:"not_reloaded,omitempty"`
}

func newRenderCmd(a *app) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "render --service S --template T [--out F] [--diff] [--dry-run]",
		Short: "Render one template of a service against its live binding",
		Long: `Render renders one template for SERVICE (in the --federation) from the
binding the resolver stored for it, and installs it as a listener would.

T is one of:
  NAME           a template in the service's manifest (templates: NAME): it is
                 installed at its destination with its perms, owner and group,
                 after its check passes, keeping a backup if asked, and its
                 reload command runs when the file changed
  builtin:NAME   a builtin template (` + strings.Join(templates.Builtins(), ", ") + `)
  PATH           a template file

--out F installs at F instead of the destination and runs no reload; with
"--out -", or when T has no destination, the result goes to stdout.
--diff prints a unified diff from the installed file to the rendered one,
and "no change" on stderr when there is none.
--dry-run installs nothing and runs no command: with --diff it shows what
would change, without it prints the rendered file (with --json, whether it
would change).

With --config listener.yaml, its root is prefixed to the destination, as
the listener of that node does (patchbay dev's nodes render under
.patchbay-dev/<node>/). The reload command then does not run unless
--reload is given: it would act on this host's service, not on the files
under root.

A template that needs an unresolved requirement, or a load balancer with
fewer upstreams than its min, is not rendered: the installed file stays.`,
		Example: `  patchbay render --service lb-public --template nginx --diff --dry-run
  patchbay render --service app-www --template builtin:env --out -
  patchbay render --service app-www --template ./app.env.tmpl --out /etc/app-www/env`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.render(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.service, "service", "", "service whose binding to render (required)")
	fl.StringVar(&f.template, "template", "", "manifest template name, builtin:NAME or a file (required)")
	fl.StringVar(&f.out, "out", "", `install here instead of the destination; "-" for stdout`)
	fl.StringVar(&f.region, "region", "", "region of the node (default: none)")
	fl.BoolVar(&f.diff, "diff", false, "print a unified diff against the installed file")
	fl.BoolVar(&f.dryRun, "dry-run", false, "install nothing, run no check or reload")
	fl.BoolVar(&f.asJSON, "json", false, "print the outcome as JSON")
	fl.BoolVar(&f.reload, "reload", false, "run the reload command even when --config's root places the file under another directory")
	_ = cmd.MarkFlagRequired("service")
	_ = cmd.MarkFlagRequired("template")
	return cmd
}

func (a *app) render(ctx context.Context, f renderFlags) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	m, err := reg.Manifest(ctx, a.g.Federation, f.service)
	if err != nil {
		return err
	}
	spec, err := templateSpec(m, f.template)
	if err != nil {
		return err
	}
	b, err := a.liveBinding(ctx, reg, m, f.region)
	if err != nil {
		return err
	}
	out, err := a.renderSpec(ctx, reg, m, b, f.template, spec)
	if err != nil {
		return err
	}
	dest, root := a.underRoot(spec.Destination), a.configRoot()
	if f.out != "" {
		dest, root = f.out, ""
	}
	if dest == "" || dest == "-" {
		_, err := a.stdout.Write(out)
		return err
	}
	res := renderResult{Destination: dest}
	if f.diff {
		if res.Diff, err = diffInstalled(dest, out); err != nil {
			return err
		}
		if !f.asJSON {
			fmt.Fprint(a.stdout, res.Diff)
		}
	}
	if f.dryRun {
		if res.Changed, err = differs(dest, out); err != nil {
			return err
		}
		if !f.diff && !f.asJSON {
			_, err := a.stdout.Write(out)
			return err
		}
		return a.report(res, f)
	}
	if err := a.install(ctx, out, spec, root, f, &res); err != nil {
		return err
	}
	return a.report(res, f)
}

// install installs out at res.Destination as a listener would, and runs
// the reload command when the file changed; under root, only with
// --reload, since the command acts on this host's service.
func (a *app) install(ctx context.Context, out []byte, spec manifest.TemplateFile, root string, f renderFlags, res *renderResult) error {
	file, err := templates.FileOf(spec)
	if err != nil {
		return err
	}
	// Confined as a listener confines it: beneath root ("/" without one),
	// or, for --out, the directory the operator named.
	file.Destination, file.Root = res.Destination, root
	if f.out != "" {
		if file.Destination, err = filepath.Abs(f.out); err != nil {
			return err
		}
		file.Root = filepath.Dir(file.Destination)
	}
	if res.Changed, err = templates.Install(ctx, out, file); err != nil {
		return withOutput(err)
	}
	if !res.Changed || f.out != "" || len(spec.Reload) == 0 { // only manifest templates have one
		return nil
	}
	if root != "" && !f.reload {
		res.NotReloaded = fmt.Sprintf("root %s is set, so %q would act on this host, not on the file under it; give --reload to run it", root, strings.Join(spec.Reload, " "))
		return nil
	}
	if err := templates.Run(ctx, spec.Reload, time.Duration(spec.Timeout)); err != nil {
		return withOutput(fmt.Errorf("installed %s, but its reload failed: %w", res.Destination, err))
	}
	res.Reloaded = true
	return nil
}

func (a *app) report(res renderResult, f renderFlags) error {
	if f.asJSON {
		return a.printJSON(res)
	}
	switch {
	case f.dryRun && !res.Changed:
		fmt.Fprintf(a.stderr, "no change: %s is up to date\n", res.Destination) // an empty diff alone looks like a failure
	case f.dryRun:
	case res.Reloaded:
		fmt.Fprintf(a.stderr, "installed %s and reloaded\n", res.Destination)
	case res.NotReloaded != "":
		fmt.Fprintf(a.stderr, "installed %s; not reloaded: %s\n", res.Destination, res.NotReloaded)
	case res.Changed:
		fmt.Fprintf(a.stderr, "installed %s\n", res.Destination)
	default:
		fmt.Fprintf(a.stderr, "%s is up to date\n", res.Destination)
	}
	return nil
}

// templateSpec finds T: a manifest template, a builtin or a file.
func templateSpec(m *manifest.Manifest, t string) (manifest.TemplateFile, error) {
	if s, ok := m.Templates[t]; ok {
		return s, nil
	}
	spec := manifest.TemplateFile{Perms: manifest.DefaultTemplatePerms, Timeout: manifest.DefaultCommandTimeout}
	spec.Min = new(int(manifest.DefaultTemplateMin))
	switch {
	case strings.HasPrefix(t, manifest.BuiltinPrefix):
		spec.Source = t
		return spec, nil
	case fileExists(t):
		abs, err := filepath.Abs(t)
		spec.Source = abs
		return spec, err
	}
	known := slices.Sorted(maps.Keys(m.Templates))
	return spec, usageErrorf("template %q: service %s has no such template (its templates: [%s]), and it is neither builtin:NAME nor a file",
		t, m.ID, strings.Join(known, " "))
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// liveBinding reads the binding the resolver stored for the service, or,
// when none is stored, resolves it now from the registry.
func (a *app) liveBinding(ctx context.Context, reg *registry.Client, m *manifest.Manifest, region string) (*binding.Binding, error) {
	for _, r := range slices.Compact([]string{region, ""}) {
		stored, err := reg.Binding(ctx, m.Federation, m.ID, r)
		if err != nil {
			return nil, err
		}
		if stored == nil {
			continue
		}
		var b binding.Binding
		if err := json.Unmarshal(stored.Value, &b); err != nil {
			return nil, fmt.Errorf("binding of %s in region %q: %w", m.ID, r, err)
		}
		return &b, nil
	}
	fmt.Fprintf(a.stderr, "warning: no binding stored for %s (is a resolver running?); resolving it now\n", m.ID)
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return bindingFor(snap, m.Federation, m.ID, region)
}

// renderSpec renders a template with lookups in the registry's Consul.
func (a *app) renderSpec(ctx context.Context, reg *registry.Client, m *manifest.Manifest, b *binding.Binding, name string, spec manifest.TemplateFile) ([]byte, error) {
	contents, err := templates.Contents(spec)
	if err != nil {
		return nil, err
	}
	lookups, err := reg.Lookups()
	if err != nil {
		return nil, err
	}
	defer lookups.Close()
	r := templates.NewRenderer(
		templates.WithFetcher(lookups),
		templates.WithFetchTimeout(a.g.Timeout),
		templates.WithLogger(a.logger()),
	)
	return r.Render(ctx, name, contents, templates.Data{
		Service: m.ID, Federation: m.Federation, Region: b.Region,
		Environment: m.Environment, Binding: b, Options: spec.Options, Min: *spec.Min,
	})
}

// configRoot is the root of --config's listener.yaml ("" for none): the
// directory its listener places destinations under.
func (a *app) configRoot() string {
	if a.g.ConfigFile == "" {
		return ""
	}
	root := a.viper.GetString("root")
	if root == "/" {
		return ""
	}
	return root
}

// underRoot places a destination under configRoot, as the listener does.
func (a *app) underRoot(dest string) string {
	root := a.configRoot()
	if root == "" || dest == "" || dest == "-" {
		return dest
	}
	return filepath.Join(root, filepath.Clean("/"+dest)) // cleaned alone first: ".." cannot climb out of root
}

// differs reports whether out differs from the installed file (missing:
// it differs).
func differs(dest string, out []byte) (bool, error) {
	installed, err := os.ReadFile(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case err != nil:
		return false, err
	}
	return !bytes.Equal(installed, out), nil
}

// diffInstalled diffs the installed file (missing: empty) with out.
func diffInstalled(dest string, out []byte) (string, error) {
	installed, err := os.ReadFile(dest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return templates.Diff(installed, out, dest)
}

// withOutput adds the end of a failed command's output to err: render runs
// the command on the user's own behalf, who reads it here, while a
// listener keeps output out of what leaves the node.
func withOutput(err error) error {
	if out := templates.CommandOutput(err); out != "" {
		return fmt.Errorf("%w; its output ends: %s", err, out)
	}
	return err
}

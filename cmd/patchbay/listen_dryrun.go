package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/model"
)

const dryRunHelp = `

--once --dry-run renders every hosted service's templates from the live
bindings and prints what the run would do on this node: the files that
would change (--diff: with unified diffs), their checks (run on staged
copies) and results, the reload commands, provision commands and declared
tests that would run. It changes nothing: no file, no reload, no provision
command, no test, no status in Consul. --json prints the report as JSON
(diffs with --diff). Exit 0 when the run would apply, 1 when a template or
check would fail.`

// listenDryRun is listen --once --dry-run.
func (a *app) listenDryRun(ctx context.Context, cfg *listener.Config, reg listener.Registry, opts []listener.Option, f listenFlags) error {
	if !f.once || !f.dryRun {
		return usageErrorf("--dry-run and --diff go with --once: listen --once --dry-run [--diff] [--json]")
	}
	l, err := listener.New(cfg, reg, opts...)
	if err != nil {
		return err
	}
	r, err := l.DryRun(ctx)
	if err != nil {
		return err
	}
	if !f.diff {
		for i := range r.Services {
			for j := range r.Services[i].Templates {
				r.Services[i].Templates[j].Diff = ""
			}
		}
	}
	if f.asJSON {
		err = a.printJSON(r)
	} else {
		printDryRun(a.stdout, r)
	}
	if err == nil && r.Result == listener.ResultFailed {
		err = fmt.Errorf("%w (dry run): %s", listener.ErrProvision, r.Message)
	}
	return err
}

// printDryRun writes the report for a person.
func printDryRun(w io.Writer, r *listener.DryRunReport) {
	fmt.Fprintf(w, "dry run on %s (federation %s, region %q): the run would be %s; nothing was changed\n", r.Node, r.Federation, r.Region, r.Result)
	for _, s := range r.Services {
		line := fmt.Sprintf("%s: %s (revision %d, binding of region %q)", s.Service, s.Result, s.Revision, s.BindingRegion)
		if s.Reason != "" {
			line += ": " + s.Reason
		}
		fmt.Fprintln(w, line)
		if s.RolloutGroup != "" && s.Result == listener.ResultOK {
			fmt.Fprintf(w, "  would wait for a slot in rollout group %s\n", s.RolloutGroup)
		}
		for _, file := range s.Templates {
			printDryRunFile(w, file)
		}
		if s.Provision != nil {
			fmt.Fprintf(w, "  provision would run: %s (%s)\n", s.Provision.Command, s.Provision.Why)
		}
		for _, t := range s.Tests {
			fmt.Fprintf(w, "  test %s would run: %s (%s)\n", t.Name, t.Command, t.Why)
		}
	}
	for _, cmd := range r.Reloads {
		fmt.Fprintf(w, "reload would run once: %s\n", cmd)
	}
}

func printDryRunFile(w io.Writer, f listener.TemplateRun) {
	switch {
	case f.Error != "" && !f.Changed:
		fmt.Fprintf(w, "  file %s: not rendered, keeps its last good version: %s\n", f.Destination, f.Error)
		return
	case !f.Changed:
		fmt.Fprintf(w, "  file %s: unchanged\n", f.Destination)
		return
	}
	fmt.Fprintf(w, "  file %s: would change\n", f.Destination)
	if c := f.Check; c != nil {
		verdict := "passes"
		if !c.Passed {
			verdict = "fails, nothing would be installed: " + c.Error
		}
		fmt.Fprintf(w, "    check %s: %s\n", c.Command, verdict)
	}
	switch {
	case f.Apply == model.ApplyRuntime:
		fmt.Fprintf(w, "    servers change over HAProxy's runtime API, no reload (%s if it fails)\n", f.Reload)
	case f.Reload != "":
		fmt.Fprintf(w, "    reload: %s\n", f.Reload)
	}
	if f.Diff != "" {
		for line := range strings.SplitSeq(strings.TrimRight(f.Diff, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}

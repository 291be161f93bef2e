package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/patchbay/patchbay/model"
)

// WriteText writes the plan for a person: bindings before → after,
// routes losing upstreams, failovers, then per node the files (with their
// diffs) and commands, then rollout groups and notes.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	if !p.Changed() {
		b.WriteString("no change: every binding stays as it is\n")
	}
	for _, in := range p.Removed {
		fmt.Fprintf(&b, "removed instance %s of %s on node %s\n", in.ID, in.Service, in.Node)
	}
	for _, c := range p.Bindings {
		writeBinding(&b, c)
	}
	for _, r := range p.Routes {
		empty := ""
		if r.Empty {
			empty = " — EMPTY: no upstream left"
		}
		fmt.Fprintf(&b, "route %s of %s%s (%s): %d → %d upstreams, losing %s%s\n",
			r.Key, r.Service, regionText(r.Region), r.Var, r.Before, r.After, strings.Join(r.Lost, ", "), empty)
	}
	writeLocal(&b, p.Local)
	for _, f := range p.Failovers {
		fmt.Fprintf(&b, "unique service %s fails over (its instance %s on %s goes): %s\n", f.Service, f.Instance, f.Node, f.Note)
	}
	for _, u := range p.Unhosted {
		others := "no other node renders it"
		if len(u.OtherNodes) > 0 {
			others = "still rendered on " + strings.Join(u.OtherNodes, ", ")
		}
		fmt.Fprintf(&b, "node %s stops rendering %s (federation %s): %s; %s\n", u.Node, u.Service, u.Federation, orNone(strings.Join(u.Files, ", ")), others)
	}
	for _, n := range p.Nodes {
		writeNode(&b, n)
	}
	for _, g := range p.Rollouts {
		fmt.Fprintf(&b, "rollout group %s (federation %s) rolls, %d at a time, across %s\n", g.Group, g.Federation, g.Concurrency, strings.Join(g.Nodes, ", "))
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("plan: write: %w", err)
	}
	return nil
}

func regionText(r string) string {
	if r == "" {
		return ""
	}
	return " in region " + r
}

func writeBinding(b *strings.Builder, c BindingChange) {
	extra := ""
	if c.ManifestChanged {
		extra = " (its manifest changes)"
	}
	fmt.Fprintf(b, "%s binding of %s%s (federation %s)%s\n", c.Change, c.Service, regionText(c.Region), c.Federation, extra)
	for _, v := range c.Vars {
		fmt.Fprintf(b, "  %s [%s]: %s → %s\n", v.Var, v.Kind, orNone(v.Before), orNone(v.After))
		if len(v.Lost) > 0 {
			fmt.Fprintf(b, "      loses %s\n", strings.Join(v.Lost, ", "))
		}
		if len(v.Gained) > 0 {
			fmt.Fprintf(b, "      gains %s\n", strings.Join(v.Gained, ", "))
		}
		if v.Reason != "" {
			fmt.Fprintf(b, "      why: %s\n", v.Reason)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func writeNode(b *strings.Builder, n NodeChange) {
	fmt.Fprintf(b, "node %s:\n", n.Node)
	for _, s := range n.Services {
		fmt.Fprintf(b, "  %s%s", s.Service, regionText(s.Region))
		if s.Result != model.ResultOK {
			fmt.Fprintf(b, ": %s: %s", s.Result, s.Reason)
		}
		if s.RolloutGroup != "" && applies(s) {
			fmt.Fprintf(b, " (rollout group %s)", s.RolloutGroup)
		}
		b.WriteString("\n")
		for _, f := range s.Templates {
			writeTemplate(b, f)
		}
		if s.Provision != nil {
			fmt.Fprintf(b, "    provision: %s (%s)\n", s.Provision.Command, s.Provision.Why)
		}
	}
	for _, r := range n.Reloads {
		fmt.Fprintf(b, "  reload: %s\n", strings.Join(r, " "))
	}
}

func writeTemplate(b *strings.Builder, f model.TemplateRun) {
	if f.Error != "" {
		fmt.Fprintf(b, "    %s → %s: not rendered, keeps its last good version: %s\n", f.Name, f.Destination, f.Error)
		return
	}
	how := ""
	if f.Apply == model.ApplyRuntime {
		how = " (servers changed over HAProxy's runtime API, no reload)"
	}
	fmt.Fprintf(b, "    re-render %s → %s%s\n", f.Name, f.Destination, how)
	for _, line := range strings.SplitAfter(strings.TrimRight(f.Diff, "\n"), "\n") {
		b.WriteString("      " + strings.TrimRight(line, "\n") + "\n")
	}
}

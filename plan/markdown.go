package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/patchbay/patchbay/model"
)

// MaxComment is the largest pull-request comment GitHub accepts, in
// characters: WriteMarkdown's default bound.
const MaxComment = 65536

// truncationReserve keeps room under the bound for the truncation note.
const truncationReserve = 400

// WriteMarkdown writes the plan as a pull-request comment: a summary line,
// the bindings that change (a table), routes (those left empty in bold),
// and per node its files' diffs in collapsible sections. The comment stays
// within limit characters (MaxComment when limit <= 0): what does not fit
// is left out, and a closing note says how much and how to see it all.
// Values are those of the plan, which the redaction policy already masked.
func (p *Plan) WriteMarkdown(w io.Writer, limit int) error {
	if limit <= 0 {
		limit = MaxComment
	}
	m := &mdWriter{budget: limit - truncationReserve}
	m.add("### patchbay plan\n\n" + p.summaryLine() + "\n")
	if len(p.Bindings) > 0 {
		m.section("\n#### Bindings\n\n| service | region | change | requirement | before | after |\n| --- | --- | --- | --- | --- | --- |\n")
		for _, c := range p.Bindings {
			m.item("binding rows", bindingRows(c))
		}
	}
	if len(p.Routes) > 0 {
		m.section("\n#### Routes\n\n")
		for _, r := range p.Routes {
			m.item("routes", routeLine(r))
		}
	}
	p.markdownChanges(m)
	if len(p.Nodes) > 0 {
		m.section("\n#### Nodes\n\n")
		for _, n := range p.Nodes {
			m.item("nodes", nodeDetails(n))
		}
	}
	if len(p.Rollouts) > 0 || len(p.Notes) > 0 {
		m.section("\n#### Rollouts and notes\n\n")
		for _, g := range p.Rollouts {
			m.item("rollout groups", fmt.Sprintf("- rollout group `%s` (federation %s) rolls, %d at a time, across %s\n", g.Group, g.Federation, g.Concurrency, strings.Join(g.Nodes, ", ")))
		}
		for _, n := range p.Notes {
			m.item("notes", "- note: "+mdText(n)+"\n")
		}
	}
	m.closeNote()
	if _, err := io.WriteString(w, m.b.String()); err != nil {
		return fmt.Errorf("plan: write: %w", err)
	}
	return nil
}

// markdownChanges lists what Impact adds: instances removed, failovers,
// services a node stops rendering.
func (p *Plan) markdownChanges(m *mdWriter) {
	if len(p.Removed)+len(p.Failovers)+len(p.Unhosted) == 0 {
		return
	}
	m.section("\n#### Instances\n\n")
	for _, in := range p.Removed {
		m.item("instances", fmt.Sprintf("- removed instance `%s` of %s on node %s\n", in.ID, in.Service, in.Node))
	}
	for _, f := range p.Failovers {
		m.item("failovers", fmt.Sprintf("- unique service %s fails over (its instance `%s` on %s goes): %s\n", f.Service, f.Instance, f.Node, mdText(f.Note)))
	}
	for _, u := range p.Unhosted {
		others := "**no other node renders it**"
		if len(u.OtherNodes) > 0 {
			others = "still rendered on " + strings.Join(u.OtherNodes, ", ")
		}
		m.item("services unhosted", fmt.Sprintf("- node %s stops rendering %s: %s; %s\n", u.Node, u.Service, orNone(strings.Join(u.Files, ", ")), others))
	}
}

// summaryLine is one sentence: what changes, where, and what to look at.
func (p *Plan) summaryLine() string {
	if !p.Changed() {
		return "**No change**: every binding stays as it is."
	}
	files, empty := 0, 0
	for _, n := range p.Nodes {
		for _, s := range n.Services {
			files += len(s.Templates)
		}
	}
	for _, r := range p.Routes {
		if r.Empty {
			empty++
		}
	}
	parts := []string{count(len(p.Bindings), "binding changes", "bindings change")}
	parts = append(parts, fmt.Sprintf("%s on %s", count(files, "file re-renders", "files re-render"), count(len(p.Nodes), "node", "nodes")))
	if len(p.Rollouts) > 0 {
		parts = append(parts, count(len(p.Rollouts), "rollout group rolls", "rollout groups roll"))
	}
	if empty > 0 {
		parts = append(parts, "**"+count(empty, "route is left without upstreams", "routes are left without upstreams")+"**")
	}
	return strings.Join(parts, ", ") + "."
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// bindingRows is a binding change as table rows, one per requirement.
func bindingRows(c BindingChange) string {
	region := c.Region
	if region == "" {
		region = "–"
	}
	change := c.Change
	if c.ManifestChanged {
		change += " (manifest)"
	}
	if len(c.Vars) == 0 {
		return fmt.Sprintf("| %s | %s | %s | | | |\n", c.Service, region, change)
	}
	var b strings.Builder
	for _, v := range c.Vars {
		after := mdCode(orNone(v.After))
		if v.Reason != "" {
			after += " — " + mdCell(mdText(v.Reason))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s | %s |\n", c.Service, region, change, v.Var, mdCode(orNone(v.Before)), after)
	}
	return b.String()
}

// routeLine is a route losing upstreams; one left empty is in bold.
func routeLine(r RouteChange) string {
	line := fmt.Sprintf("route `%s` of %s%s (%s): %d → %d upstreams, losing %s", r.Key, r.Service, regionText(r.Region), r.Var, r.Before, r.After, strings.Join(r.Lost, ", "))
	if r.Empty {
		return "- **" + line + " — EMPTY: no upstream left**\n"
	}
	return "- " + line + "\n"
}

// nodeDetails is one node's files and commands in a collapsible section.
func nodeDetails(n NodeChange) string {
	var b strings.Builder
	files := 0
	for _, s := range n.Services {
		files += len(s.Templates)
	}
	fmt.Fprintf(&b, "<details><summary><b>%s</b>: %s</summary>\n\n", mdText(n.Node), count(files, "file", "files"))
	for _, s := range n.Services {
		fmt.Fprintf(&b, "**%s**%s", s.Service, regionText(s.Region))
		if s.RolloutGroup != "" && applies(s) {
			fmt.Fprintf(&b, " (rollout group `%s`)", s.RolloutGroup)
		}
		if s.Result != model.ResultOK {
			fmt.Fprintf(&b, ": %s: %s", s.Result, mdText(s.Reason))
		}
		b.WriteString("\n\n")
		for _, f := range s.Templates {
			writeTemplateMarkdown(&b, f)
		}
		if s.Provision != nil {
			fmt.Fprintf(&b, "- provision: `%s` (%s)\n", s.Provision.Command, mdText(s.Provision.Why))
		}
	}
	for _, r := range n.Reloads {
		fmt.Fprintf(&b, "- reload: `%s`\n", strings.Join(r, " "))
	}
	b.WriteString("\n</details>\n")
	return b.String()
}

// writeTemplateMarkdown is one template's change: its diff in a fenced
// block, or why it is not rendered.
func writeTemplateMarkdown(b *strings.Builder, f model.TemplateRun) {
	if f.Error != "" {
		fmt.Fprintf(b, "- `%s` → `%s`: not rendered, keeps its last good version: %s\n", f.Name, f.Destination, mdText(f.Error))
		return
	}
	how := ""
	if f.Apply == model.ApplyRuntime {
		how = " (servers changed over HAProxy's runtime API, no reload)"
	}
	fmt.Fprintf(b, "- `%s` → `%s`%s\n\n", f.Name, f.Destination, how)
	fence := codeFence(f.Diff)
	fmt.Fprintf(b, "%sdiff\n%s\n%s\n\n", fence, strings.TrimRight(f.Diff, "\n"), fence)
}

// codeFence is a backtick fence longer than any run of backticks in s.
func codeFence(s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// mdCode is s as inline code that stays in its table cell.
func mdCode(s string) string {
	s = mdCell(s)
	if strings.Contains(s, "`") {
		return "``" + s + "``"
	}
	return "`" + s + "`"
}

// mdCell keeps s on one table row and out of its column separators.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// mdText is s with what markdown or HTML would interpret escaped.
func mdText(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;", "*", `\*`, "_", `\_`, "`", "\\`").Replace(strings.Join(strings.Fields(s), " "))
}

// mdWriter appends blocks while they fit a budget; what does not fit is
// counted, by kind, for the closing note.
type mdWriter struct {
	b       strings.Builder
	budget  int
	full    bool
	left    []string
	counted map[string]int
}

func (m *mdWriter) add(s string) bool {
	if m.full || m.b.Len()+len(s) > m.budget {
		m.full = true
		return false
	}
	m.b.WriteString(s)
	return true
}

// section starts a section; once the comment is full, none starts.
func (m *mdWriter) section(header string) { m.add(header) }

// item adds one block of a section, or counts it as left out.
func (m *mdWriter) item(kind, s string) {
	if m.add(s) {
		return
	}
	if m.counted == nil {
		m.counted = map[string]int{}
	}
	if m.counted[kind] == 0 {
		m.left = append(m.left, kind)
	}
	m.counted[kind]++
}

func (m *mdWriter) closeNote() {
	if len(m.left) == 0 {
		return
	}
	var parts []string
	for _, k := range m.left {
		parts = append(parts, fmt.Sprintf("%d %s", m.counted[k], k))
	}
	fmt.Fprintf(&m.b, "\n> [!NOTE]\n> Truncated to fit a pull-request comment: %s not shown. Run `patchbay plan` for the whole plan.\n", strings.Join(parts, ", "))
}

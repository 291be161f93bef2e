package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/registry"
)

var (
	// errNotApplied: a node failed to apply a change (exit 4).
	errNotApplied = errkind.New(errkind.Input, "wait: not applied")
	// errWaitTimeout: nodes had not applied a change within the timeout (exit 5).
	errWaitTimeout = errkind.New(errkind.Backend, "wait: timed out")
)

// waitOptions are the flags every waiting command shares.
type waitOptions struct {
	timeout time.Duration
	poll    time.Duration
	asJSON  bool
}

func addWaitFlags(cmd *cobra.Command, o *waitOptions) {
	cmd.Flags().DurationVar(&o.timeout, "wait-timeout", 5*time.Minute, "give up after this long, naming the nodes that are pending, paused or not answering (exit 5)")
	cmd.Flags().DurationVar(&o.poll, "wait-poll", 500*time.Millisecond, "how often to ask the listeners over NATS")
}

func newWaitCmd(a *app) *cobra.Command {
	var o waitOptions
	cmd := &cobra.Command{
		Use:   "wait SERVICE[/REGION]@REVISION...",
		Short: "Wait until every node hosting the services applied these binding revisions",
		Long: `Wait follows a change to every node: it blocks until each node that hosts
one of the services applied the binding revision given, or a later one.

A change is identified by the binding revisions it produced, per service and
region ('publish --wait --json' and 'datastore set --wait --json' print
them; 'patchbay resolve --json' shows a binding's current revision). A
revision without /REGION is the region-less binding.

It asks the live listeners over NATS (patchbay.changes) every --wait-poll and
takes the nodes Consul recorded as hosting a service that do not answer as
stale. A node is applied, pending, running, paused, stale, halted (its
rollout group is halted), skipped (unresolved requirements) or failed (with
its reason). Progress is a line on a terminal's stderr, a line per node
change otherwise, and JSON lines on stdout with --json.

Exit codes: 0 every node applied; 4 a node failed, skipped it or its rollout
is halted (once every other node is done); 5 --wait-timeout passed with
nodes pending, running, paused or stale; 1 bad input; 2 Consul or NATS
unreachable. The error names each node that did not apply, and why.`,
		Example: `  patchbay wait app-www@42
  patchbay wait app-www/eu@17 lb@9 --wait-timeout 2m
  patchbay wait app-www@42 --json | jq -c 'select(.type == "node")'`,
		Args: namedArgs("SERVICE[/REGION]@REVISION..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets := make([]tracking.Target, 0, len(args))
			for _, s := range args {
				t, err := parseWaitTarget(s)
				if err != nil {
					return err
				}
				targets = append(targets, t)
			}
			return a.waitApplied(cmd.Context(), targets, time.Time{}, o)
		},
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, `print JSON lines: {"type": "node"|"progress"|"result", ...}`)
	addWaitFlags(cmd, &o)
	return cmd
}

// waitLine is one JSON line of a wait's --json output.
type waitLine struct {
	Type string `json:"type"` // published, targets, node, progress, result
	// Published is what publish or datastore set changed.
	Published any               `json:"published,omitempty"`
	Targets   []tracking.Target `json:"targets,omitempty"`
	Node      *tracking.Node    `json:"node,omitempty"`
	Summary   string            `json:"summary,omitempty"`
	Counts    map[string]int    `json:"counts,omitempty"`
	Nodes     []tracking.Node   `json:"nodes,omitempty"`
	Result    string            `json:"result,omitempty"` // applied, not-applied, timeout
	Elapsed   time.Duration     `json:"elapsed_ns,omitempty"`
	Latency   *tracking.Latency `json:"latency,omitempty"`
}

// waitApplied blocks until every node hosting a target applied it, a node
// failed, or o.timeout passed. since is when the change was made (publish),
// for latencies; zero when unknown.
func (a *app) waitApplied(ctx context.Context, targets []tracking.Target, since time.Time, o waitOptions) error {
	start := time.Now()
	if !since.IsZero() {
		start = since // publish --wait: the whole change, resolver included
	}
	out := newWaitPrinter(a.stdout, a.stderr, o.asJSON)
	out.targets(targets)
	if len(targets) == 0 {
		out.result(tracking.View{Counts: map[string]int{}}, "applied", time.Since(start))
		return nil
	}
	reg, err := a.registry()
	if err != nil {
		return err
	}
	nc, err := a.dialNATS("patchbay wait", nats.Timeout(min(o.timeout, 10*time.Second)))
	if err != nil {
		return fmt.Errorf("wait needs NATS to ask the listeners: %w", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var v tracking.View
	for {
		recorded, _, err := reg.Statuses(ctx)
		if ctx.Err() != nil {
			return a.waitResult(out, v, start, true)
		}
		if err != nil {
			return err
		}
		answers, err := events.AskChanges(ctx, nc, nodesOf(recorded), o.poll)
		if ctx.Err() != nil {
			return a.waitResult(out, v, start, true)
		}
		if err != nil {
			return err
		}
		halts, err := reg.Halts(ctx)
		if ctx.Err() != nil {
			return a.waitResult(out, v, start, true)
		}
		if err != nil {
			return err
		}
		v = tracking.Place(targets, tracking.Inputs{Federation: a.g.Federation, Answers: answers, Recorded: recorded, Halts: halts, Since: since})
		out.progress(v, time.Since(start))
		if v.Done() {
			return a.waitResult(out, v, start, false)
		}
		select {
		case <-ctx.Done():
			return a.waitResult(out, v, start, true)
		case <-time.After(o.poll):
		}
	}
}

// waitResult prints the end of a wait and returns its error, naming each
// node that did not apply.
func (a *app) waitResult(out *waitPrinter, v tracking.View, start time.Time, timedOut bool) error {
	var bad []string
	failed := false
	for _, n := range v.Nodes {
		if n.State == tracking.Applied {
			continue
		}
		failed = failed || tracking.Final(n.State)
		bad = append(bad, fmt.Sprintf("%s %s%s", n.Node, n.State, suffix(": ", n.Reason)))
	}
	result := "applied"
	switch {
	case failed:
		result = "not-applied"
	case len(bad) > 0 && timedOut:
		result = "timeout"
	}
	out.result(v, result, time.Since(start))
	switch result {
	case "not-applied":
		return fmt.Errorf("%w on %d of %d nodes: %s", errNotApplied, len(bad), len(v.Nodes), strings.Join(bad, "; "))
	case "timeout":
		return fmt.Errorf("%w after %s: not applied on %d of %d nodes: %s", errWaitTimeout, time.Since(start).Round(time.Second), len(bad), len(v.Nodes), strings.Join(bad, "; "))
	}
	return nil
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// waitPrinter shows a wait's progress: JSON lines, or a line per node
// change with a redrawn progress line when stderr is a terminal.
type waitPrinter struct {
	out, errOut io.Writer
	asJSON, tty bool
	last        map[string]string // node → state printed
	lastSummary string
}

func newWaitPrinter(out, errOut io.Writer, asJSON bool) *waitPrinter {
	return &waitPrinter{out: out, errOut: errOut, asJSON: asJSON, tty: !asJSON && isTerminal(errOut), last: map[string]string{}}
}

func (p *waitPrinter) line(l waitLine) {
	b, _ := json.Marshal(l) // strings, numbers, times
	fmt.Fprintf(p.out, "%s\n", b)
}

func (p *waitPrinter) targets(ts []tracking.Target) {
	if p.asJSON {
		p.line(waitLine{Type: "targets", Targets: ts})
		return
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	if len(ts) == 0 {
		fmt.Fprintln(p.out, "nothing to wait for: the change altered no binding")
		return
	}
	fmt.Fprintf(p.out, "waiting for %s\n", strings.Join(names, " "))
}

func (p *waitPrinter) progress(v tracking.View, elapsed time.Duration) {
	for _, n := range v.Nodes {
		if p.last[n.Node] == n.State {
			continue
		}
		p.last[n.Node] = n.State
		if p.asJSON {
			p.line(waitLine{Type: "node", Node: &n})
			continue
		}
		p.clearTTY()
		at := ""
		if n.Latency > 0 {
			at = " after " + n.Latency.Round(time.Millisecond).String()
		}
		fmt.Fprintf(p.out, "%-8s %s%s%s\n", n.State, n.Node, at, suffix(": ", n.Reason))
	}
	summary := v.Summary()
	switch {
	case p.asJSON && summary != p.lastSummary:
		p.line(waitLine{Type: "progress", Summary: summary, Counts: v.Counts, Elapsed: elapsed})
	case p.tty:
		fmt.Fprintf(p.errOut, "\r\033[K%s (%s)", summary, elapsed.Round(time.Second))
	}
	p.lastSummary = summary
}

func (p *waitPrinter) clearTTY() {
	if p.tty {
		fmt.Fprint(p.errOut, "\r\033[K")
	}
}

func (p *waitPrinter) result(v tracking.View, result string, elapsed time.Duration) {
	lat := tracking.Latencies(v.Nodes)
	if p.asJSON {
		p.line(waitLine{Type: "result", Result: result, Summary: v.Summary(), Counts: v.Counts, Nodes: v.Nodes, Elapsed: elapsed, Latency: lat})
		return
	}
	p.clearTTY()
	fmt.Fprintf(p.out, "%s: %s in %s", result, v.Summary(), elapsed.Round(time.Millisecond))
	if lat != nil {
		fmt.Fprintf(p.out, "; change to files p50 %s, p99 %s, slowest %s (%s)", lat.P50.Round(time.Millisecond), lat.P99.Round(time.Millisecond), lat.Slowest, lat.Max.Round(time.Millisecond))
	}
	fmt.Fprintln(p.out)
}

// nodesOf names the recorded nodes: a round of answers ends once they all
// answered.
func nodesOf(recorded []registry.Status) []string {
	out := make([]string, len(recorded))
	for i, s := range recorded {
		out[i] = s.Node
	}
	return out
}

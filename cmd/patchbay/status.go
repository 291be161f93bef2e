package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// statusReport is the --json output of patchbay status.
type statusReport struct {
	Nodes  []registry.Status        `json:"nodes"`
	Halted map[string]registry.Halt `json:"halted"` // by "federation/group"
}

func newStatusCmd(a *app) *cobra.Command {
	var (
		asJSON bool
		wait   time.Duration
		prune  bool
	)
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show every node's last provision and the halted rollout groups",
		Long: `Status shows every node's last provision run: the result (ok, failed,
skipped: a service had unresolved requirements, halted: its rollout group is
halted), the bindings revision applied, how long ago, and what went wrong,
service by service.

It asks the live listeners over NATS (patchbay.status), waiting at most
--live-wait, and lays their answers over what Consul recorded: a listener
writes its status to Consul only when its outcome changes (never once per
run, which would cost a Raft write per node per change), so Consul keeps the
last outcome of every node, including those that are down, and live
listeners add their latest revision and time.

A recorded node that does not answer within --live-wait is shown as stale,
with the time of its last record: its listener was killed, or its host is
down or cut off. A listener that stops cleanly deletes its record, so a
node taken out of service disappears. --prune deletes the records of the
stale nodes.

It also lists the rollout groups of every federation that are halted: a node
failed to apply a change, so the group's other nodes stage changes without
applying them until patchbay rollout resume GROUP.

To see one host's listener live (its queue, whether it is paused), ask its
control endpoint, as the listener's user (it shows the end of a failed
command's output, which nothing that leaves the node carries):
curl --unix-socket /run/patchbay/listener.sock http://localhost/status.`,
		Example: `  patchbay status
  patchbay status --json | jq '.nodes[] | select(.result != "ok" or .stale)'
  patchbay status --prune                # forget nodes that no longer answer`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.status(cmd.Context(), asJSON, wait, prune) },
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"nodes": [...], "halted": {"federation/group": {...}}} as JSON`)
	cmd.Flags().BoolVar(&prune, "prune", false, "delete the records of stale nodes, which did not answer within --live-wait")
	cmd.Flags().DurationVar(&wait, "live-wait", time.Second, "how long to wait for live listeners' answers over NATS, which stops early once every recorded node answered (0: Consul's records only)")
	return cmd
}

func (a *app) status(ctx context.Context, asJSON bool, wait time.Duration, prune bool) error {
	if prune && wait <= 0 {
		return usageErrorf("--prune needs --live-wait above 0: only nodes that do not answer over NATS are pruned")
	}
	reg, err := a.registry()
	if err != nil {
		return err
	}
	statuses, skipped, err := reg.Statuses(ctx)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(a.stderr, "warning: skipped unreadable %s: %s\n", registry.ShownKey(s.Key), s.Reason)
	}
	if wait > 0 {
		var asked error
		statuses, asked = a.liveStatuses(statuses, wait)
		if prune && asked != nil {
			return fmt.Errorf("--prune cannot tell live nodes from stale ones without NATS: %w", asked)
		}
		if prune {
			if statuses, err = a.pruneStale(ctx, reg, statuses); err != nil {
				return err
			}
		}
	}
	halts, err := reg.Halts(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return a.printJSON(statusReport{Nodes: append([]registry.Status{}, statuses...), Halted: halts})
	}
	printStatus(a.stdout, statuses, halts, time.Now())
	return nil
}

func printStatus(w io.Writer, statuses []registry.Status, halts map[string]registry.Halt, now time.Time) {
	if len(statuses) == 0 {
		fmt.Fprintln(w, "no node has recorded a provision yet; each listener records one after every run")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tRESULT\tREVISION\tAGE\tMESSAGE")
		count := map[string]int{}
		for _, s := range statuses {
			result, msg := s.Result, statusLine(s.Message)
			if s.Stale {
				result, msg = "stale", staleMessage(s)
			}
			count[result]++
			rev := "-"
			if s.Revision > 0 {
				rev = strconv.FormatUint(s.Revision, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Node, result, rev, statusAge(now, s.At), msg)
			// Details under their node, in the message column, so that a
			// failing node reads as one block.
			for _, k := range slices.Sorted(maps.Keys(s.Details)) {
				fmt.Fprintf(tw, "\t\t\t\t%s: %s\n", k, statusLine(s.Details[k]))
			}
		}
		tw.Flush()
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(count)) {
			parts = append(parts, fmt.Sprintf("%d %s", count[r], r))
		}
		fmt.Fprintf(w, "%d nodes: %s\n", len(statuses), strings.Join(parts, ", "))
	}

	fmt.Fprintln(w)
	if len(halts) == 0 {
		fmt.Fprintln(w, "no rollout group is halted")
		return
	}
	fmt.Fprintln(w, "halted rollouts:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tBY NODE\tREASON\tSINCE")
	for _, key := range slices.Sorted(maps.Keys(halts)) {
		h := halts[key]
		by, since := h.Node, "-"
		if by == "" {
			by = "-"
		}
		if !h.At.IsZero() {
			since = statusAge(now, h.At) + " ago (" + h.At.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", key, by, statusLine(h.Reason), since)
	}
	tw.Flush()
	fmt.Fprintln(w, "the nodes of a halted group stage changes without applying them; once the cause is fixed: patchbay rollout resume GROUP --federation FEDERATION")
}

// statusAge is a short age: 40s, 12m, 5h, 3d.
func statusAge(now, at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	d := max(now.Sub(at), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// statusLine keeps a recorded message on its table row.
func statusLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// liveStatuses asks every live listener for its last run over NATS and
// lays the answers over the recorded statuses: listeners record a status in
// Consul only when their outcome changes, so revisions and times of later
// runs come from them. It waits at most wait, less once every recorded node
// answered; without NATS, the recorded statuses are shown with a warning.
//
// A recorded node that did not answer is marked stale. Without NATS none
// is, and the error says why.
func (a *app) liveStatuses(recorded []registry.Status, wait time.Duration) ([]registry.Status, error) {
	nc, err := a.dialNATS("patchbay status", nats.Timeout(wait))
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: showing recorded statuses only: %v\n", err)
		return recorded, err
	}
	defer nc.Close()
	statuses, err := events.AskStatus(context.Background(), nc, recorded, wait)
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: showing recorded statuses only: %v\n", err)
	}
	return statuses, err
}

// staleMessage says what is known of a node that no longer answers.
func staleMessage(s registry.Status) string {
	return fmt.Sprintf("no answer over NATS; last recorded %s at %s (stopped, killed or cut off; patchbay status --prune forgets it)",
		s.Result, s.At.Format(time.RFC3339))
}

// pruneStale deletes the records of stale nodes and returns the others.
func (a *app) pruneStale(ctx context.Context, reg *registry.Client, statuses []registry.Status) ([]registry.Status, error) {
	var keep []registry.Status
	for _, s := range statuses {
		if !s.Stale {
			keep = append(keep, s)
			continue
		}
		if err := reg.DeleteStatus(ctx, s.Node); err != nil {
			return nil, err
		}
		fmt.Fprintf(a.stderr, "pruned %s: %s\n", s.Node, staleMessage(s))
	}
	return keep, nil
}

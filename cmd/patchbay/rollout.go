package main

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/registry"
)

func newRolloutCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Manage rollout groups: nodes that apply changes a few at a time",
		Long: `A rollout group (rollout: {group: www} in a manifest) is a set of nodes that
apply changes a few at a time. When a node of the group fails to apply a
change, it rolls back and halts the group: the other nodes stage changes
without applying them until the group is resumed. patchbay status lists the
halted groups.`,
	}
	cmd.AddCommand(newRolloutResumeCmd(a))
	return cmd
}

// rolloutResumeResult is the --json output of rollout resume.
type rolloutResumeResult struct {
	Federation string         `json:"federation"`
	Group      string         `json:"group"`
	WasHalted  bool           `json:"was_halted"`
	Halt       *registry.Halt `json:"halt,omitempty"` // who halted it, and why
	Announced  bool           `json:"announced"`      // on NATS; else the nodes apply at anti-entropy
	Warning    string         `json:"warning,omitempty"`
}

func newRolloutResumeCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "resume GROUP",
		Short: "Clear a rollout group's halt so that its nodes apply again",
		Long: `Resume clears the halt flag of rollout group GROUP in the --federation and
announces it on NATS (patchbay.<federation>.rollout.<group>), so that the
group's nodes apply what they staged at once, a few at a time. Fix what made
the group halt first (patchbay status says which node halted it and why):
otherwise the next node to fail halts it again.

If NATS cannot be reached the halt is still cleared; the nodes then apply at
their next anti-entropy check (2m by default).`,
		Example: `  patchbay status                                # which groups are halted, and why
  patchbay rollout resume www
  patchbay rollout resume api --federation seatgeek`,
		Args: namedArgs("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fed, group := a.g.Federation, args[0]
			// A NATS setting to fix is the user's mistake: say so before
			// the halt is cleared, not as a warning after.
			if _, err := a.natsOptions(); err != nil {
				return err
			}
			reg, err := a.registry()
			if err != nil {
				return err
			}
			g, err := reg.Rollout(fed, group)
			if err != nil {
				return err
			}
			// Read who halted it for the message; Resume's answer decides.
			halt, err := g.Halted(cmd.Context())
			if err != nil {
				return err
			}
			was, err := g.Resume(cmd.Context())
			if err != nil {
				return err
			}
			res := rolloutResumeResult{Federation: fed, Group: group, WasHalted: was}
			if was {
				res.Halt = halt
				if err := a.announceRollout(events.RolloutSubject(fed, group)); err != nil {
					res.Warning = fmt.Sprintf("%v; the nodes of %s apply at their next anti-entropy check instead of now", err, group)
				} else {
					res.Announced = true
				}
			}
			if asJSON {
				return a.printJSON(res)
			}
			a.printRolloutResume(res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"federation", "group", "was_halted", "halt", "announced", "warning"} as JSON`)
	return cmd
}

func (a *app) printRolloutResume(res rolloutResumeResult) {
	if !res.WasHalted {
		fmt.Fprintf(a.stdout, "rollout group %s (federation %s) was not halted; nothing to resume\n", res.Group, res.Federation)
		return
	}
	how := ""
	if res.Halt != nil && res.Halt.Node != "" {
		how = fmt.Sprintf(", halted by %s: %s", res.Halt.Node, statusLine(res.Halt.Reason))
	}
	fmt.Fprintf(a.stdout, "resumed rollout group %s (federation %s)%s\n", res.Group, res.Federation, how)
	if res.Warning != "" {
		fmt.Fprintf(a.stderr, "warning: %s\n", res.Warning)
	}
}

// announceRollout publishes an empty message on subject and waits until NATS has
// it. Unlike the daemons' connection (connectNATS), it does not wait for
// NATS to come back: a one-shot command reports and moves on.
func (a *app) announceRollout(subject string) error {
	timeout := min(a.g.Timeout, 5*time.Second)
	nc, err := a.dialNATS("patchbay rollout resume", nats.Timeout(timeout))
	if err != nil {
		return fmt.Errorf("cannot announce on nats at %s: %w", redact.ConnectURLs(a.g.NATSURL), err)
	}
	defer nc.Close()
	if err := nc.Publish(subject, nil); err != nil {
		return fmt.Errorf("announce on nats %s: %w", subject, err)
	}
	if err := nc.FlushTimeout(timeout); err != nil {
		return fmt.Errorf("announce on nats %s: %w", subject, err)
	}
	return nil
}

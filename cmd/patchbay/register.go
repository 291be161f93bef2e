package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/registry"
)

func newRegisterCmd(a *app) *cobra.Command {
	var (
		spec     registry.InstanceSpec
		ownerTTL time.Duration
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "register SERVICE --address A --port P [--node N] [--region R]",
		Short: "Register one instance of a service and keep it alive while this runs",
		Long: `Register makes this process the owner of one instance of SERVICE (in the
--federation): it registers the instance in the Consul catalog with the
manifest's health check and in patchbay's registry, and keeps it there until
it is stopped (Ctrl-C or SIGTERM deregisters at once). If this process dies,
the instance vanishes within about --owner-ttl; if the health check fails or
the node fails, it vanishes at once, and comes back when they recover.

It is for services without a listener, scripts and tests: a listener
registers the instances of its node itself.`,
		Example: "  patchbay register api --node api-1 --address 10.0.0.7 --port 8080 --region eu-1",
		Args:    namedArgs("SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Service, spec.Federation = args[0], a.g.Federation
			if err := registry.CheckAddress(spec.Address); err != nil {
				return err // before Consul: the address is refused wherever it would go
			}
			reg, err := a.registry()
			if err != nil {
				return err
			}
			owner, err := reg.Register(cmd.Context(), spec, registry.WithOwnerTTL(ownerTTL))
			if err != nil {
				return err
			}
			say := a.registerEvents(asJSON, spec.Federation)
			say(registerEvent{Event: "registering", Instance: owner.ID()}, fmt.Sprintf("registering %s (federation %s); waiting for its health check", owner.ID(), spec.Federation))
			if err := owner.WaitRegistered(cmd.Context()); err == nil {
				in, _ := owner.Current()
				ev := registerEvent{Event: "registered", Instance: in.ID, Address: in.Address, Port: in.Port}
				if in.Index >= 0 {
					ev.Index = &in.Index
				}
				say(ev, fmt.Sprintf("registered %s at %s:%d%s; Ctrl-C deregisters", in.ID, in.Address, in.Port, indexNote(in.Index)))
			}
			select {
			case <-cmd.Context().Done():
			case <-owner.Done(): // stopped by an error no retry mends (a permission denied)
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), a.g.Timeout)
			defer cancel()
			closeErr := owner.Close(ctx)
			if err := owner.Err(); err != nil {
				return err
			}
			if closeErr != nil {
				return closeErr
			}
			say(registerEvent{Event: "deregistered", Instance: owner.ID()}, "deregistered "+owner.ID())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print each step as one line of JSON: {"event": "registering"|"registered"|"deregistered", "instance", "federation", "address", "port", "index"}`)
	hostname, _ := os.Hostname()
	f := cmd.Flags()
	f.StringVar(&spec.Node, "node", hostname, "node name the instance runs on")
	f.StringVar(&spec.Address, "address", "", "address other services reach the instance at (required)")
	f.IntVar(&spec.Port, "port", 0, "port the instance listens on (required)")
	f.StringVar(&spec.Region, "region", "", "region label of the node")
	f.DurationVar(&ownerTTL, "owner-ttl", registry.DefaultOwnerTTL, "how long the instance outlives this process if it dies")
	_ = cmd.MarkFlagRequired("address")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

func indexNote(index int) string {
	if index < 0 {
		return ""
	}
	return fmt.Sprintf(" with index %d", index)
}

// registerEvent is one line of register --json: the command runs until
// stopped, so each step is a line of its own.
type registerEvent struct {
	Event      string `json:"event"`
	Instance   string `json:"instance"`
	Federation string `json:"federation"`
	Address    string `json:"address,omitempty"`
	Port       int    `json:"port,omitempty"`
	Index      *int   `json:"index,omitempty"`
}

// registerEvents returns how register reports a step: a line of JSON, or
// the sentence.
func (a *app) registerEvents(asJSON bool, fed string) func(registerEvent, string) {
	enc := json.NewEncoder(a.stdout)
	return func(ev registerEvent, text string) {
		if !asJSON {
			fmt.Fprintln(a.stdout, text)
			return
		}
		ev.Federation = fed
		_ = enc.Encode(ev) // stdout gone: nothing better to do with the error
	}
}

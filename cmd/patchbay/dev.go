package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/harness/dev"
)

func newDevCmd(a *app) *cobra.Command {
	var dir, services, consoleAddr string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole patchbay on this machine: Consul, NATS, the resolver and four simulated nodes",
		Long: `dev brings up a local patchbay to try things on:

  - a real Consul dev agent at --consul-addr (the one on PATH; else, in a clone
    of patchbay, bin/consul, built once from the pinned tools module),
  - a NATS server at --nats-url (nats-server on PATH; else, in a clone, bin/nats-server,
    built once from the version go.mod pins),
  - the resolver,
  - listeners for four simulated nodes: web-1 and web-2 (app-www), api-1 (api)
    and lb-1 (lb-public with nginx, lb-internal with HAProxy), each with a
    stand-in app on 127.0.0.1 answering its health checks.

It publishes --services (copied to <dir>/services on the first run, for you to
edit), and every node renders its files under <dir>/<node>/ (its listener.yaml
is there too). Simulated nodes log their check, reload and provision commands
instead of running them: on one machine, "systemctl reload" would act on the
machine itself.

The web console (patchbay console) runs at --http-addr; its URL is printed
first. The table shows each node's services, the bindings revision of each, its last
provision and result, and its queue; logs go to <dir>/dev.log. The defaults of
--consul-addr and --nats-url are the ones every other command uses, so in a
second terminal patchbay status, publish, pause and dev node just work; resolve
and explain also need PATCHBAY_SHARED_AGENT_NODES=patchbay-dev (one Consul agent
serves every dev node, and its sessions hold every node's instances).
Before it starts anything, it checks the lock on --dir (a dev cluster already
running there, with its pid) and every address, and reports every conflict at
once with the flag that moves it.
Ctrl-C stops everything: listeners deregister, then NATS and Consul stop; a dev
node whose process is gone (kill -9) leaves the table and is not waited for.`,
		Example: `  patchbay dev
  patchbay dev node api-2 api                # in a second terminal: one more api node
  patchbay pause --control 127.0.0.1:7704    # hold lb-1's changes
  patchbay publish .patchbay-dev/services/app-www`,
		Args: namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			root := dev.SourceRoot(wd)
			if services == "" && root != "" {
				services = filepath.Join(root, "examples", "services")
			}
			cfg := dev.Config{
				Cluster: a.devCluster(dir), Services: services, SourceRoot: root,
				Nodes: dev.DefaultNodes, Out: a.stdout, Live: isTerminal(a.stdout), Console: consoleAddr,
			}
			if err := dev.Preflight(cfg); err != nil { // every conflict at once, before the console takes its port
				return err
			}
			stopConsole, err := a.devConsole(cmd.Context(), consoleAddr)
			if err != nil {
				return err
			}
			err = dev.Run(cmd.Context(), cfg)
			stopConsole()
			if err == nil {
				fmt.Fprintln(a.stdout, "patchbay dev stopped; nothing of it is left running")
			}
			return err
		},
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".patchbay-dev", "where nodes render their files, and logs go")
	cmd.Flags().StringVar(&services, "services", "", "manifests to publish on the first run (default: examples/services of the patchbay source tree)")
	cmd.Flags().StringVar(&consoleAddr, "http-addr", defaultConsoleAddr, `serve the web console (patchbay console) here; "" for none (--console before; still accepted)`)
	cmd.AddCommand(newDevNodeCmd(a, &dir))
	return cmd
}

func newDevNodeCmd(a *app, dir *string) *cobra.Command {
	var control string
	return &cobra.Command{
		Use:   "node NAME SERVICE[:PORT]...",
		Short: "Add a simulated node to a running patchbay dev",
		Long: `node runs one more simulated node against a running patchbay dev, in the
foreground: a listener for NAME hosting each SERVICE (a free port unless
given; 0 registers no instance), with a stand-in app answering its health
checks. It shows up in patchbay dev's table.

Ctrl-C stops it as SIGTERM stops a real listener: it deregisters its
instances at once. kill -9 leaves them registered until their health checks
fail, as a crashed host would.`,
		Example: `  patchbay dev node api-2 api
  patchbay dev node web-3 app-www:18083`,
		Args: namedArgs("NAME", "SERVICE[:PORT]..."),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := dev.NodeSpec{Name: args[0], Control: control}
			for _, arg := range args[1:] {
				s, err := parseDevService(arg)
				if err != nil {
					return err
				}
				n.Services = append(n.Services, s)
			}
			return dev.RunNode(cmd.Context(), a.devCluster(*dir), n, a.stdout)
		},
	}
}

// parseDevService reads SERVICE[:PORT]; without a port, a free one.
func parseDevService(arg string) (dev.ServiceSpec, error) {
	name, port, found := strings.Cut(arg, ":")
	if !found {
		p, err := dev.FreePort()
		return dev.ServiceSpec{Service: name, Port: p}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return dev.ServiceSpec{}, usageErrorf("%s: the port after %s: must be a number from 0 to 65535", arg, name)
	}
	return dev.ServiceSpec{Service: name, Port: p}, nil
}

func (a *app) devCluster(dir string) dev.Cluster {
	return dev.Cluster{Dir: dir, ConsulAddr: a.g.ConsulAddr, NATSURL: a.g.NATSURL, Prefix: a.g.Prefix, Federation: a.g.Federation}
}

// isTerminal reports whether w is a terminal, where a table can redraw.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

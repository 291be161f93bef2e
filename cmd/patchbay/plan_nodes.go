package main

import (
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/plan"
)

// nodeConfigFlag is plan's and impact's --node-config: listener.yaml
// files whose nodes the plan models exactly (their region, the services
// they host, listener.yaml's provision commands).
func nodeConfigFlag(cmd *cobra.Command, paths *[]string) {
	cmd.Flags().StringArrayVar(paths, "node-config", nil,
		"a node's listener.yaml (repeatable): plan its runs with that node's region, hosted services and provision commands")
}

// nodeHosts are the services the listener.yaml files at paths host, as
// plan hosts.
func (a *app) nodeHosts(paths []string) ([]plan.Host, error) {
	var out []plan.Host
	for _, path := range paths {
		cfg, err := listener.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		for _, s := range cfg.Services {
			out = append(out, plan.Host{Node: cfg.Node, Federation: manifest.FederationOf(a.g.Federation), Service: s.Service, Region: cfg.Region, Provision: s.Provision})
		}
	}
	return out, nil
}

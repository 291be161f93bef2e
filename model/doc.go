// Package model decides what one listener run does for the services a
// node hosts: which templates it renders and with what data, which files
// it installs, which it evicts by policy, whether a change reloads or goes
// through HAProxy's runtime API, whether the provision command and tests
// run, and why a service is skipped or fails.
//
// It is pure: it reads what it is given (manifests, bindings, the node's
// listener.yaml, the installed files through a function) and imports
// nothing that talks to a network. The listener executes its decisions;
// `listen --once --dry-run`, `plan` and `impact` print them, so that what
// plan predicts is what a listener then does.
//
// It sits between the resolver's engine and everything networked:
// manifest → resolver → model → {registry, listener, plan}.
package model

import (
	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Node is what of a node's listener.yaml decides its runs.
type Node struct {
	Name       string
	Federation string
	// Region is the node's: templates render with it, whatever region the
	// binding they use was written for.
	Region string
}

// Hosted is one service of listener.yaml's services.
type Hosted struct {
	Service string
	// Provision, when set, replaces the manifest's provision command.
	Provision *manifest.Provision
}

// Input is what a run read for one hosted service.
type Input struct {
	Hosted   Hosted
	Manifest *manifest.Manifest // nil: not published
	Binding  *binding.Binding   // nil: none stored
	// Problem says why a stored value was refused; the service fails.
	Problem string
	// Installed returns the file a template installed before the run, as
	// an install would read it; false when there is none.
	Installed func(template string) ([]byte, bool)
	// Provisioned says the provision command already ran for these very
	// inputs (the same manifest and binding keys' modify indexes).
	Provisioned bool
	// Locate finds a provider's host:port as a load-balancer template
	// writes it (templates.LocateUpstream); false when none would.
	Locate func(binding.Provider) (string, bool)
}

// Results of a run and of each service in it.
const (
	ResultOK      = "ok"      // every service applied
	ResultFailed  = "failed"  // a template, reload or provision command failed
	ResultSkipped = "skipped" // nothing failed, but a service had unresolved requirements
	ResultHalted  = "halted"  // a rollout group is halted: staged, not applied
)

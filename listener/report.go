package listener

import (
	"log/slog"
	"slices"
	"time"

	"github.com/patchbay/patchbay/templates"
)

// Report is what GET /status returns and `patchbay status` reads: the
// listener's view of its node.
type Report struct {
	Node       string          `json:"node"`
	Federation string          `json:"federation"`
	Region     string          `json:"region,omitempty"`
	Queue      QueueState      `json:"queue"`
	Instances  []InstanceState `json:"instances"`
	// LastRun is the last finished provision run; nil before the first.
	LastRun *RunReport `json:"last_run,omitempty"`
	// LastSuccess is when a run last finished with result ok.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LocalLB is the node's local load balancer; nil when the node
	// serves nothing via: local.
	LocalLB *LocalReport `json:"local_lb,omitempty"`
}

// QueueState is the coalescing queue as its owner last saw it.
type QueueState struct {
	Pending bool `json:"pending"`
	Running bool `json:"running"`
	Paused  bool `json:"paused"`
	// Coalesced counts triggers absorbed into a pending run since start.
	Coalesced uint64 `json:"coalesced"`
	// RetryAt is when a failed run is retried; zero when none is due.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// InstanceState is one hosted service's registration.
type InstanceState struct {
	Service    string `json:"service"`
	ID         string `json:"id,omitempty"`
	Registered bool   `json:"registered"`
}

// Run results, also recorded in Consul as the node's status.
const (
	ResultOK      = "ok"      // every service applied
	ResultFailed  = "failed"  // a template, reload or provision command failed
	ResultSkipped = "skipped" // nothing failed, but a service had unresolved requirements
	ResultHalted  = "halted"  // a rollout group is halted: staged, not applied
)

// RunReport is one provision run.
type RunReport struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result"`
	Message  string        `json:"message,omitempty"`
	Services []ServiceRun  `json:"services"`
	// LocalLB is the local load balancer after the run; nil when the node
	// serves nothing via: local.
	LocalLB *LocalReport `json:"local_lb,omitempty"`
}

// ServiceRun is what one run did for one service.
type ServiceRun struct {
	Service  string `json:"service"`
	Revision uint64 `json:"revision"`
	Result   string `json:"result"`
	// Reason says why the service was skipped, halted or failed.
	Reason    string         `json:"reason,omitempty"`
	Templates []TemplateRun  `json:"templates,omitempty"`
	Provision *CommandResult `json:"provision,omitempty"`
	// Tests are the declared tests that ran after the apply, in order.
	Tests []TestResult `json:"tests,omitempty"`
}

// TemplateRun is one template's outcome.
type TemplateRun struct {
	Name        string `json:"name"`
	Destination string `json:"destination,omitempty"`
	Changed     bool   `json:"changed"`
	Error       string `json:"error,omitempty"`
	// Excluded lists upstreams left out of the render: their host names
	// do not resolve, and would fail the load balancer's check.
	Excluded []string `json:"excluded,omitempty"`
	// Conflicts lists routes whose providers mount them differently; each
	// route kept one mount and left the others out.
	Conflicts []string `json:"conflicts,omitempty"`
}

// CommandResult is a provision command's outcome.
type CommandResult struct {
	Ran      bool          `json:"ran"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// outputAttr is the end of a failed command's output for the node's log,
// the one place it goes: reasons and statuses leave the node, and carry
// the command and its exit status only. No attribute when err is not a
// command's or it printed nothing.
func outputAttr(err error) slog.Attr {
	if out := templates.CommandOutput(err); out != "" {
		return slog.String("output", out)
	}
	return slog.Attr{}
}

// withoutOutput is r without the commands' output: what an endpoint that
// authenticates nobody may serve. r and the run it points to are unchanged.
func (r Report) withoutOutput() Report {
	if r.LastRun == nil {
		return r
	}
	run := *r.LastRun
	run.Services = slices.Clone(run.Services)
	for i := range run.Services {
		tests := slices.Clone(run.Services[i].Tests)
		for j := range tests {
			tests[j].Output = ""
		}
		run.Services[i].Tests = tests
	}
	r.LastRun = &run
	return r
}

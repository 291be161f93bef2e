package listener

import (
	"slices"
	"time"

	"github.com/patchbay/patchbay/model"
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
	ResultOK      = model.ResultOK
	ResultFailed  = model.ResultFailed
	ResultSkipped = model.ResultSkipped
	ResultHalted  = model.ResultHalted
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

// The report of a service's run is the model's, which dry runs and plan
// print too.
type (
	ServiceRun    = model.ServiceRun
	TemplateRun   = model.TemplateRun
	CommandResult = model.CommandResult
	TestResult    = model.TestResult
	CheckResult   = model.CheckResult
)

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

package model

import "time"

// ServiceRun is what a run did, or would do, for one hosted service: the
// one report `status`, `listen --once --dry-run` and `plan` print. A
// field a view does not know is left empty.
type ServiceRun struct {
	Service string `json:"service"`
	// Federation is set by plan, whose nodes may host several.
	Federation string `json:"federation,omitempty"`
	// Region is the node's region (plan, dry run).
	Region string `json:"region,omitempty"`
	// BindingRegion is the region of the binding used (dry run); "" is
	// the region-less one.
	BindingRegion string `json:"binding_region,omitempty"`
	Revision      uint64 `json:"revision"`
	Result        string `json:"result"`
	// Reason says why the service was skipped, halted or failed.
	Reason string `json:"reason,omitempty"`
	// RolloutGroup is the group whose slot the apply waits for.
	RolloutGroup string        `json:"rollout_group,omitempty"`
	Templates    []TemplateRun `json:"templates,omitempty"`
	// Provision is the provision command: run (status) or to run (dry
	// run, plan); nil when none runs.
	Provision *CommandResult `json:"provision,omitempty"`
	// Tests are the declared tests run after the apply, in order.
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
	// Apply is how the change took (or takes) effect: ApplyInstall,
	// ApplyReload or ApplyRuntime; "" when nothing changed.
	Apply string `json:"apply,omitempty"`
	// Reload is the reload command a change runs (dry run, plan).
	Reload string `json:"reload,omitempty"`
	// Diff is a unified diff from the installed file to the rendered one
	// (dry run, plan).
	Diff string `json:"diff,omitempty"`
	// Check is the file's check command, run on a staged copy (dry run).
	Check *CheckResult `json:"check,omitempty"`
}

// CommandResult is a provision command: its outcome once run, and what
// runs and why before.
type CommandResult struct {
	Command  string        `json:"command,omitempty"`
	Why      string        `json:"why,omitempty"`
	Ran      bool          `json:"ran"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// TestResult is a declared test: its outcome once run, and what runs and
// why before.
type TestResult struct {
	Name     string        `json:"name"`
	Command  string        `json:"command"`
	Why      string        `json:"why,omitempty"`
	Passed   bool          `json:"passed"`
	Duration time.Duration `json:"duration_ns"`
	// Output is the end of what the command printed (stdout and stderr).
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// CheckResult is a check command run on a staged file during a dry run.
type CheckResult struct {
	Command string `json:"command"`
	Passed  bool   `json:"passed"`
	Error   string `json:"error,omitempty"`
}

package listener

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// DryRunReport is what a run of `listen --once` would do on the node,
// found without changing anything: no file, no reload, no provision
// command, no test, no status.
type DryRunReport struct {
	Node       string `json:"node"`
	Federation string `json:"federation"`
	Region     string `json:"region,omitempty"`
	// Result is the result the run would have (ok, failed, skipped,
	// halted) as far as can be known without applying: a reload, a
	// provision command or a test may still fail.
	Result   string       `json:"result"`
	Message  string       `json:"message,omitempty"`
	Services []ServiceRun `json:"services"`
	// Reloads are the distinct reload commands that would run, once each.
	Reloads []string `json:"reloads,omitempty"`
}

// DryRun reads the hosted services' manifests and bindings from Consul,
// renders every template, runs the checks of the files that would change
// on staged copies, and reports what a run of this fresh listener (as
// `listen --once`) would install, reload, provision and test. Like Once,
// it is for a listener that is not running.
func (l *Listener) DryRun(ctx context.Context) (*DryRunReport, error) {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { _ = l.files.Run(ctx) }) // Files owns a watcher that Run closes
	cfg := l.cfg.Load()
	hosted, err := l.reg.ReadNode(ctx, l.fed, cfg.serviceNames(), cfg.Region)
	if err != nil {
		return nil, fmt.Errorf("listener: dry run: reading the bindings: %w", err)
	}
	plans := make([]*plan, len(hosted))
	var prep sync.WaitGroup
	for i, h := range hosted {
		plans[i] = &plan{sc: cfg.Services[i], hosted: h, report: ServiceRun{Service: h.Service}}
		prep.Go(func() { l.prepare(ctx, cfg, plans[i]) })
	}
	prep.Wait()
	r := &DryRunReport{Node: cfg.Node, Federation: l.fed, Region: cfg.Region}
	for _, p := range plans {
		s := l.dryRunService(ctx, cfg, p)
		r.Services = append(r.Services, s)
		for _, f := range s.Templates {
			if f.Apply == model.ApplyReload && !slices.Contains(r.Reloads, f.Reload) {
				r.Reloads = append(r.Reloads, f.Reload)
			}
		}
	}
	r.Result, r.Message = summarize(r.Services)
	return r, nil
}

// dryRunService describes one prepared plan, running the checks of the
// files it would change.
func (l *Listener) dryRunService(ctx context.Context, cfg *Config, p *plan) ServiceRun {
	s := ServiceRun{Service: p.sc.Service, Region: cfg.Region, Revision: p.report.Revision, RolloutGroup: p.group()}
	if p.hosted.Binding != nil {
		s.BindingRegion = p.hosted.Binding.Region
	}
	for _, t := range p.report.Templates {
		if t.Error != "" { // not rendered: the file keeps its last good version
			s.Templates = append(s.Templates, TemplateRun{Name: t.Name, Destination: t.Destination, Error: t.Error})
		}
	}
	for _, f := range p.files {
		s.Templates = append(s.Templates, l.dryRunFile(ctx, p, f))
	}
	slices.SortFunc(s.Templates, func(a, b TemplateRun) int { return strings.Compare(a.Name, b.Name) })
	if !p.done() {
		if failed := templateErrors(p); failed != "" {
			p.finish(ResultFailed, failed)
		} else if reason := l.dryRunHalted(ctx, p); reason != "" {
			p.finish(ResultHalted, reason)
		}
	}
	if !p.done() && p.due {
		s.Provision, s.Tests = l.plannedCommands(cfg, p)
	}
	if p.report.Result == "" {
		p.report.Result = cmp.Or(p.after, ResultOK)
	}
	s.Result, s.Reason = p.report.Result, p.report.Reason
	return s
}

// dryRunFile diffs a rendered file with the installed one and, when it
// would change, runs its check on a staged copy.
func (l *Listener) dryRunFile(ctx context.Context, p *plan, f *rendered) TemplateRun {
	fd := model.Decide(f.spec, f.previous, f.existed, f.content)
	d := TemplateRun{Name: f.name, Destination: f.file.Destination, Changed: fd.Changed, Apply: fd.Apply, Excluded: f.report.Excluded, Conflicts: f.report.Conflicts}
	if !d.Changed {
		return d
	}
	diff, err := templates.Diff(f.previous, f.content, f.file.Destination)
	if err != nil {
		d.Error = err.Error()
	}
	d.Diff = diff
	if len(f.spec.Reload) > 0 {
		d.Reload = strings.Join(f.spec.Reload, " ")
	}
	if len(f.file.Check) > 0 {
		d.Check = l.dryRunCheck(ctx, f)
		if !d.Check.Passed {
			f.report.Error = d.Check.Error // fails the service, as the run's install would
		}
	}
	return d
}

// dryRunCheck stages the file beside its destination when that directory
// exists, as an install would, and in a directory of its own otherwise: a
// dry run creates no directory on the node.
func (l *Listener) dryRunCheck(ctx context.Context, f *rendered) *CheckResult {
	res := &CheckResult{Command: strings.Join(f.file.Check, " ")}
	file := f.file
	if _, err := os.Stat(filepath.Dir(file.Destination)); err != nil {
		dir, err := os.MkdirTemp("", "patchbay-dry-run-")
		if err != nil {
			res.Error = fmt.Sprintf("stage for the check: %v", err)
			return res
		}
		defer func() { _ = os.RemoveAll(dir) }() // a staging directory under the OS temp dir
		file.Destination, file.Root = filepath.Join(dir, filepath.Base(file.Destination)), dir
	}
	if l.simulated {
		l.log.Info("simulated node: would run", "command", res.Command)
	} else if err := templates.Check(ctx, f.content, file); err != nil {
		res.Error = err.Error()
		return res
	}
	res.Passed = true
	return res
}

// dryRunHalted says why the service's rollout group is halted, "" if it is
// not (or cannot be read, which the run would report itself).
func (l *Listener) dryRunHalted(ctx context.Context, p *plan) string {
	name := p.group()
	if name == "" || !(p.due || p.changes()) {
		return ""
	}
	rg, err := l.reg.Rollout(l.fed, name)
	if err != nil {
		return ""
	}
	h, err := rg.Halted(ctx)
	if err != nil || h == nil {
		return ""
	}
	return fmt.Sprintf("rollout group %s halted by %s: %s; the run would stage, not apply (patchbay rollout resume %s)", name, h.Node, h.Reason, name)
}

// plannedCommands are the provision command and tests a due service would
// run, with its placeholders expanded.
func (l *Listener) plannedCommands(cfg *Config, p *plan) (*CommandResult, []TestResult) {
	var prov *CommandResult
	if c := model.ProvisionOf(cfg.hostedOf(p.sc), p.m); c != nil && len(c.Command) > 0 {
		prov = &CommandResult{Command: strings.Join(c.Command, " "), Why: p.why}
	}
	var tests []TestResult
	vars := manifest.TestVars(p.m, cfg.addrOf(p.sc), p.sc.Port, cfg.Node, cfg.Region)
	for _, t := range p.m.Tests {
		pc := TestResult{Name: t.Name, Command: strings.Join(t.Command, " "), Why: "after the apply"}
		if argv, err := t.Argv(vars); err != nil {
			pc.Why = "would fail: " + err.Error()
		} else {
			pc.Command = strings.Join(argv, " ")
		}
		tests = append(tests, pc)
	}
	return prov, tests
}

package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/listener/balance"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// ErrProvision: a run did not apply everything (see its report).
var ErrProvision = errkind.New(errkind.Input, "listener: provision failed")

// plan is what one run does for one hosted service. Each step of the run
// writes a plan from one goroutine at a time; the run's phases hand plans
// on with WaitGroups and channels, which order those writes.
type plan struct {
	sc      ServiceConfig
	hosted  registry.HostedService
	m       *manifest.Manifest
	binding *binding.Binding
	svc     model.Service // what the model decided
	files   []*rendered
	report  ServiceRun
	due     bool   // the provision command should run
	why     string // why it runs
	applied bool   // files were installed (a rollback may undo them)

	view      string // consumerView, once known
	viewKnown bool

	// Load-balancer safety (lb.go).
	relaxed bool   // a policy render of a binding that is not ready (model.Service.Policy)
	after   string // the result once applied, when not ok
}

// rendered is one template's output in a run.
type rendered struct {
	name     string
	spec     manifest.TemplateFile
	file     templates.File
	content  []byte
	previous []byte // what was installed before the run
	existed  bool
	changed  bool // installed by this run
	report   *TemplateRun
}

func (p *plan) done() bool { return p.report.Result != "" }

// consumerView is consumerView(p.binding) (local_due.go), computed once a
// run: the run asks before it renders and again once it provisioned.
func (p *plan) consumerView() string {
	if !p.viewKnown {
		p.view, p.viewKnown = consumerView(p.binding), true
	}
	return p.view
}

// eachPlan calls fn for every plan, concurrently when there are several.
// A lone plan runs on the caller's goroutine: a node hosting one service
// then pays no goroutine start, and none of the thread wake-ups it costs,
// on every change.
func eachPlan(plans []*plan, fn func(*plan)) {
	if len(plans) == 1 {
		fn(plans[0])
		return
	}
	var wg sync.WaitGroup
	for _, p := range plans {
		wg.Go(func() { fn(p) })
	}
	wg.Wait()
}

func (p *plan) finish(result, reason string) {
	p.report.Result, p.report.Reason = result, reason
}

func (p *plan) group() string {
	if p.m == nil || p.m.Rollout == nil {
		return ""
	}
	return p.m.Rollout.Group
}

// provision is one run: read, render, gate, install, reload, provision,
// verify, record.
func (l *Listener) provision(ctx context.Context) error {
	start := time.Now()
	cfg := l.cfg.Load()
	hosted, err := l.readInputs(ctx, cfg)
	if err != nil {
		return l.record(ctx, cfg, &RunReport{Started: start, Result: ResultFailed, Message: "reading the bindings: " + err.Error()})
	}
	plans := make([]*plan, len(hosted))
	for i, h := range hosted { // ReadNode keeps the config's order
		plans[i] = &plan{sc: cfg.Services[i], hosted: h, report: ServiceRun{Service: h.Service}}
	}
	eachPlan(plans, func(p *plan) { l.prepare(ctx, cfg, p) })
	l.noteRegions(cfg, plans)
	l.noteSeen(plans)
	l.announceGroups(groupsOf(plans))
	if l.runsLocalLB(cfg) { // before the files: a new local value finds its port served
		l.local.sync(ctx, cfg, plans) // local_run.go
	}
	l.apply(ctx, cfg, plans)
	l.noteSeen(plans)
	run := &RunReport{Started: start, LocalLB: l.local.Report()}
	for _, p := range plans {
		if p.report.Result == "" {
			p.report.Result = cmp.Or(p.after, ResultOK)
		}
		run.Services = append(run.Services, p.report)
	}
	run.Result, run.Message = summarize(run.Services)
	return l.record(ctx, cfg, run)
}

// readInputs returns the hosted services' manifests and bindings: those
// events brought in, or Consul's when the listener cannot trust its copy.
func (l *Listener) readInputs(ctx context.Context, cfg *Config) ([]registry.HostedService, error) {
	names := cfg.serviceNames()
	if hosted, source, ok := l.inputs.current(names); ok {
		l.metrics.InputsRead(source)
		return hosted, nil
	}
	start := l.inputs.readStart()
	hosted, err := l.reg.ReadNode(ctx, l.fed, names, cfg.Region)
	if err != nil {
		return nil, err
	}
	l.metrics.InputsRead(sourceConsul)
	l.inputs.fromConsul(hosted, start, sourceConsul)
	return hosted, nil
}

// prepare checks a service's stored inputs, lets the model decide what
// the run renders, and renders it.
func (l *Listener) prepare(ctx context.Context, cfg *Config, p *plan) {
	h := p.hosted
	in := model.Input{Hosted: cfg.hostedOf(p.sc), Manifest: h.Manifest, Problem: h.Problem, Locate: templates.LocateUpstream}
	if h.Problem != "" {
		l.log.Error("stored input refused; nothing of the service runs", "service", h.Service, "reason", h.Problem)
	}
	if in.Problem == "" && h.Manifest != nil && h.Binding != nil {
		p.m = h.Manifest
		if l.refuse(cfg, p) {
			return
		}
		b, err := decodeBinding(h)
		if err != nil {
			l.log.Error("binding refused; the service's files keep their last good version", "service", h.Service, "err", err)
			p.finish(ResultFailed, err.Error())
			return
		}
		p.binding, p.report.Revision, in.Binding = b, b.Revision, b
		last, ok := l.provisioned[h.Service]
		in.Provisioned = ok && !l.inputsChanged(h.Service, last, h, p.consumerView) // local_due.go
		in.Installed = func(name string) ([]byte, bool) {
			b, _, err := templates.ReadInstalled(templates.File{Root: cfg.confinedRoot(), Destination: cfg.destination(h.Manifest.Templates[name].Destination)})
			return b, err == nil
		}
	}
	p.svc = model.Prepare(cfg.modelNode(l.fed), in)
	l.lb.NoteEvictions(p.sc.Service, p.svc.Evicted)
	if !p.svc.Policy && p.svc.Result != "" {
		p.finish(p.svc.Result, p.svc.Reason)
		return
	}
	p.relaxed, p.after, p.report.Reason = p.svc.Policy, p.svc.Result, p.svc.Reason
	for _, r := range p.svc.Renders {
		p.report.Templates = append(p.report.Templates, TemplateRun{Name: r.Template, Destination: r.Spec.Destination})
	}
	for i, r := range p.svc.Renders {
		if f := l.render(ctx, cfg, p, r, &p.report.Templates[i]); f != nil {
			p.files = append(p.files, f)
		}
	}
	p.due, p.why = p.svc.ProvisionDue(p.changes())
}

// decodeBinding reads h's binding with the resolver's rules, and refuses
// one that is not h's service's: whoever can write the key or publish the
// event is not trusted to choose what a service renders.
func decodeBinding(h registry.HostedService) (*binding.Binding, error) {
	sb := h.Binding
	where := sb.Key
	if where == "" {
		where = fmt.Sprintf("the bindings event of %s/%s (region %q)", sb.Federation, sb.Service, sb.Region)
	}
	b, err := binding.DecodeBinding(where, sb.Value)
	if err != nil {
		return nil, err
	}
	if b.Federation != sb.Federation || b.Service != sb.Service || b.Region != sb.Region {
		return nil, fmt.Errorf("%w: %s holds the binding of %s/%s (region %q); the resolver rewrites it", binding.ErrBadBinding, where, b.Federation, b.Service, b.Region)
	}
	return b, nil
}

// render renders one template; nil when it failed (recorded in tr).
func (l *Listener) render(ctx context.Context, cfg *Config, p *plan, r model.Render, tr *TemplateRun) *rendered {
	name, spec := r.Template, r.Spec
	fail := func(err error) *rendered {
		tr.Error = err.Error()
		l.log.Error("template not rendered; its file keeps its last good version", "service", p.m.ID, "template", name, "err", err)
		return nil
	}
	if r.Error != "" {
		return fail(errors.New(r.Error))
	}
	contents, err := templates.Contents(spec)
	if err != nil {
		return fail(err)
	}
	file, err := templates.FileOf(spec)
	if err != nil {
		return fail(err)
	}
	file.Destination, file.Root = cfg.destination(spec.Destination), cfg.confinedRoot()
	file.Env, file.Guard = cfg.Env.Node(), l.commands.Guard(cfg.Allow, cfg.File, p.sc.Service, name)
	if l.simulated {
		file.Check, file.Owner, file.Group = nil, "", ""
	}
	tr.Destination = file.Destination
	start := time.Now()
	data := l.lb.Data(ctx, p.m.ID, &p.report.Reason, len(file.Check) > 0, templates.Data{
		Service: p.m.ID, Federation: l.fed, Region: r.Region,
		Environment: p.m.Environment, NodeEnv: cfg.Env.Node(), Binding: r.Binding, Options: spec.Options, Min: r.Min,
	}, tr)
	out, err := l.renderer.Render(ctx, name, contents, data)
	if errors.Is(err, templates.ErrTooFewUpstreams) && p.svc.GuardEvicts(name) { // policy beats last-good
		l.log.Warn("installed file routes to a provider policy no longer allows; rendering without it", "service", p.m.ID, "template", name)
		l.metrics.PolicyEvicted()
		data.Min = 0
		out, err = l.renderer.Render(ctx, name, contents, data)
	}
	l.metrics.Rendered(time.Since(start))
	if err != nil {
		return fail(err)
	}
	f := &rendered{name: name, spec: spec, file: file, content: out, report: tr}
	// Read as the install reads it: a link there is not followed (its
	// target would show in a dry run's diff).
	f.previous, _, err = templates.ReadInstalled(file)
	switch {
	case err == nil:
		f.existed = true
	case errors.Is(err, templates.ErrConfined):
		return fail(err) // says which directory is a link
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, templates.ErrNotRegular):
		return fail(fmt.Errorf("read the installed %s: %w", file.Destination, err))
	}
	return f
}

// apply installs what changed, reloads, runs provision commands and
// declared tests, and verifies rollouts, for every service still in the run.
func (l *Listener) apply(ctx context.Context, cfg *Config, plans []*plan) {
	var active []*plan
	for _, p := range plans {
		if !p.done() {
			active = append(active, p)
		}
	}
	gate := l.enterRollouts(ctx, cfg, active)
	defer gate.release()
	active = slices.DeleteFunc(active, (*plan).done)
	l.install(ctx, active)
	l.reload(ctx, active)
	l.runProvisions(ctx, cfg, plans)
	l.runTests(ctx, cfg, plans, gate)
	gate.verify(ctx, l, cfg)
}

// install installs every rendered file of the active services. Unchanged
// files are installed too: that is a no-op that puts them under drift
// correction.
func (l *Listener) install(ctx context.Context, active []*plan) {
	eachPlan(active, func(p *plan) {
		for _, f := range p.files {
			changed, err := l.files.Install(ctx, f.content, f.file, f.spec.Reload, time.Duration(f.spec.Timeout))
			if err != nil {
				f.report.Error = err.Error()
				l.log.Error("file not installed; it keeps its last good version", "service", p.sc.Service, "template", f.name, "err", err, templates.OutputAttr(err))
				continue
			}
			f.changed, f.report.Changed = changed, changed
			p.applied = p.applied || changed
			if changed {
				f.report.Apply = model.ApplyInstall
				if len(f.spec.Reload) > 0 {
					f.report.Apply = model.ApplyReload // or ApplyRuntime, once hitless applies it
				}
				l.log.Info("installed", "service", p.sc.Service, "template", f.name, "file", f.file.Destination)
			}
		}
	})
}

// reloadJob is one distinct reload command of a run.
type reloadJob struct {
	argv    []string
	timeout time.Duration
	files   []*rendered
}

// reload runs each distinct reload command of the changed files once, and
// again those that failed in an earlier run: the files they serve were
// installed then, so this run finds them unchanged.
func (l *Listener) reload(ctx context.Context, active []*plan) {
	jobs := map[string]*reloadJob{}
	var order []string
	add := func(argv []string, timeout time.Duration) *reloadJob {
		key := strings.Join(argv, "\x00")
		if jobs[key] == nil {
			jobs[key] = &reloadJob{argv: argv, timeout: timeout}
			order = append(order, key)
		}
		return jobs[key]
	}
	for _, key := range slices.Sorted(maps.Keys(l.failedReloads)) {
		j := l.failedReloads[key]
		add(j.argv, j.timeout)
	}
	for _, p := range active {
		for _, f := range p.files {
			if f.changed && len(f.spec.Reload) > 0 && !l.lb.Hitless(ctx, f.change()) { // balance/haproxy.go
				j := add(f.spec.Reload, time.Duration(f.spec.Timeout))
				j.files = append(j.files, f)
			}
		}
	}
	failed := make([]bool, len(order))
	var wg sync.WaitGroup
	for i, key := range order {
		j := jobs[key]
		wg.Go(func() {
			err := l.commands.Run(ctx, j.argv, j.timeout)
			if err == nil {
				if !l.simulated { // which said "would run" instead
					l.log.Info("reloaded", "command", strings.Join(j.argv, " "))
				}
				return
			}
			failed[i] = true
			l.log.Error("reload failed; it runs again in the next run", "command", strings.Join(j.argv, " "), "err", err, templates.OutputAttr(err))
			for _, f := range j.files { // each file belongs to one plan, written only here
				f.report.Error = "installed, but its reload failed: " + err.Error()
			}
		})
	}
	wg.Wait()
	l.failedReloads = map[string]reloadJob{}
	for i, key := range order {
		if failed[i] {
			l.failedReloads[key] = reloadJob{argv: jobs[key].argv, timeout: jobs[key].timeout}
		}
	}
	for _, p := range active {
		if failed := templateErrors(p); failed != "" {
			p.finish(ResultFailed, failed)
		}
	}
}

func templateErrors(p *plan) string {
	var failed []string
	for _, t := range p.report.Templates {
		switch prefix := "template " + t.Name; {
		case t.Error == "":
		case strings.HasPrefix(t.Error, prefix+" "), strings.HasPrefix(t.Error, prefix+":"): // the renderer's errors name it
			failed = append(failed, t.Error)
		default:
			failed = append(failed, prefix+": "+t.Error)
		}
	}
	return strings.Join(failed, "; ")
}

// groupsOf lists the rollout groups of the services, whose resume events
// the node subscribes to.
func groupsOf(plans []*plan) []string {
	var groups []string
	for _, p := range plans {
		if g := p.group(); g != "" && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}

// noteSeen publishes what the run read, for anti-entropy and events.
func (l *Listener) noteSeen(plans []*plan) {
	seen := make(map[string]seenInputs, len(plans))
	for _, p := range plans {
		s := inputsOf(p.hosted)
		s.revision = p.report.Revision
		if p.report.Result == ResultHalted {
			s.halted = p.group()
		}
		seen[p.sc.Service] = s
	}
	l.seen.Store(&seen)
}

// summarize picks the run's result: failed over halted over skipped over ok.
func summarize(services []ServiceRun) (result, message string) {
	rank := map[string]int{ResultOK: 0, ResultSkipped: 1, ResultHalted: 2, ResultFailed: 3}
	result = ResultOK
	var notes []string
	for _, s := range services {
		if rank[s.Result] > rank[result] {
			result = s.Result
		}
		if s.Result != ResultOK {
			notes = append(notes, s.Service+" "+s.Result+": "+s.Reason)
		}
	}
	return result, strings.Join(notes, "; ")
}

// record publishes a finished run: report, metrics, status in Consul. It
// returns an error for a failed run, which the queue retries.
func (l *Listener) record(ctx context.Context, cfg *Config, run *RunReport) error {
	run.Duration = time.Since(run.Started)
	l.lastRun.Store(run)
	l.trackRun(run, time.Now())
	if l.onRun != nil {
		l.onRun(*run)
	}
	l.metrics.RunFinished(run.Result, run.Duration, time.Now())
	l.metrics.LeftOut(balance.LeftOut(run.Services))
	if run.Result == ResultOK {
		t := time.Now()
		l.lastOK.Store(&t)
	}
	level := map[string]slog.Level{ResultOK: slog.LevelInfo, ResultSkipped: slog.LevelWarn, ResultHalted: slog.LevelWarn, ResultFailed: slog.LevelError}[run.Result]
	l.log.Log(ctx, level, "provision run finished", "result", run.Result, "took", run.Duration.Round(time.Millisecond), "message", run.Message)
	status := statusOf(cfg.Node, l.fed, run)
	l.putStatus(ctx, status, outcomeOf(run))
	if run.Result == ResultFailed {
		return fmt.Errorf("%w: %s", ErrProvision, run.Message)
	}
	return nil
}

// putStatus records the node's status in Consul when the run's outcome
// differs from the last one recorded: a healthy stream of changes costs
// Consul no write per node per run. Revisions and times of later runs are
// served live by the control endpoint and the status request on NATS.
func (l *Listener) putStatus(ctx context.Context, status registry.Status, outcome string) {
	if outcome == l.recorded {
		return
	}
	// Recorded even on shutdown; the registry client bounds the write by
	// its timeout (--timeout).
	if err := l.reg.PutStatus(context.WithoutCancel(ctx), status); err != nil {
		l.log.Warn("cannot record the run's status in Consul; trying again after the next run", "err", err)
		return
	}
	l.metrics.StatusWritten()
	l.recorded = outcome
}

// outcomeOf is what of a run the status in Consul records: its result and
// each service's, with reasons, but not revisions.
func outcomeOf(run *RunReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s", run.Result, run.Message)
	for _, s := range run.Services {
		fmt.Fprintf(&b, "\x00%s\x00%s\x00%s", s.Service, s.Result, s.Reason)
	}
	return b.String()
}

// statusOf is the status a run leaves for `patchbay status`.
func statusOf(node, fed string, run *RunReport) registry.Status {
	status := registry.Status{Node: node, Federation: fed, Result: run.Result, Message: run.Message, At: run.Started.Add(run.Duration), Details: map[string]string{}}
	for _, s := range run.Services {
		status.Revision = max(status.Revision, s.Revision)
		d := fmt.Sprintf("%s (revision %d)", s.Result, s.Revision)
		if s.Reason != "" {
			d += ": " + s.Reason
		}
		status.Details[s.Service] = d
	}
	localDetails(status.Details, run.LocalLB) // local.go
	return status
}

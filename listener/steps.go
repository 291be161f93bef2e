package listener

import (
	"context"
	"strings"
	"time"

	"github.com/patchbay/patchbay/listener/command"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// runProvisions runs the provision command of every service that is due,
// after the services it names in after: have finished theirs; the others
// run in parallel. A service whose after: service failed does not run.
func (l *Listener) runProvisions(ctx context.Context, cfg *Config, plans []*plan) {
	finished := make(map[string]chan struct{}, len(plans))
	for _, p := range plans {
		finished[p.sc.Service] = make(chan struct{})
	}
	eachPlan(plans, func(p *plan) {
		defer close(finished[p.sc.Service])
		for _, dep := range p.sc.After {
			ch, ok := finished[dep]
			if !ok {
				continue
			}
			select {
			case <-ch: // dep's plan is final once its channel closes
			case <-ctx.Done():
				return
			}
			if d := planOf(plans, dep); d.report.Result == ResultFailed && !p.done() {
				p.finish(ResultFailed, "not provisioned: "+dep+", which it runs after, failed")
			}
		}
		if !p.done() && p.due {
			l.runProvision(ctx, cfg, p)
		}
	})
	for _, p := range plans { // the goroutines are done: the run owns the map again
		switch {
		case p.report.Result == ResultFailed:
			// Due again next run, even if that run finds the files it
			// installed this time unchanged.
			delete(l.provisioned, p.sc.Service)
		case !p.done() && p.due:
			l.provisioned[p.sc.Service] = inputsOf(p.hosted)
			l.provisionedView[p.sc.Service] = p.consumerView() // local_due.go
		}
	}
}

func planOf(plans []*plan, service string) *plan {
	for _, p := range plans {
		if p.sc.Service == service {
			return p
		}
	}
	return nil
}

// runProvision runs one provision command with the binding as environment
// variables, its output logged line by line.
func (l *Listener) runProvision(ctx context.Context, cfg *Config, p *plan) {
	prov := model.ProvisionOf(cfg.hostedOf(p.sc), p.m)
	if prov == nil || len(prov.Command) == 0 {
		return
	}
	log := l.log.With("service", p.sc.Service, "command", strings.Join(prov.Command, " "))
	out := command.NewLineLogger(log)
	start := time.Now()
	timeout := time.Duration(prov.Timeout)
	if timeout == 0 {
		timeout = time.Duration(manifest.DefaultProvisionLimit)
	}
	log.Info("running the provision command")
	err := l.commands.Run(ctx, prov.Command, timeout, templates.WithEnv(l.provisionEnv(cfg, p)), templates.WithOutput(out))
	out.Flush()
	res := &CommandResult{Command: strings.Join(prov.Command, " "), Why: p.why, Ran: true, Duration: time.Since(start)}
	p.report.Provision = res
	if err != nil {
		res.Error = err.Error()
		log.Error("provision command failed", "err", err, "took", res.Duration.Round(time.Millisecond))
		p.finish(ResultFailed, "provision command: "+err.Error())
		return
	}
	log.Info("provision command succeeded", "took", res.Duration.Round(time.Millisecond))
}

// provisionEnv is a provision command's and a test's environment
// (commandEnv), logging what of the manifest's it leaves out.
func (l *Listener) provisionEnv(cfg *Config, p *plan) []string {
	env, dropped := commandEnv(cfg, l.fed, p)
	if len(dropped) > 0 {
		l.log.Warn("manifest environment names not given to commands: they choose what programs load, or listener.yaml sets them",
			"service", p.sc.Service, "names", dropped)
	}
	return env
}

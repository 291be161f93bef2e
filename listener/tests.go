package listener

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// runTests runs the declared tests of every service that applied something
// or provisioned in this run, services in parallel, each service's tests in
// order until one fails. A failure inside an entered rollout group marks
// the service failed, and the gate's verify rolls the group back and halts
// it; outside, the service's previous files are restored here. Either way
// the run fails and the queue retries it with backoff.
func (l *Listener) runTests(ctx context.Context, cfg *Config, plans []*plan, g *gate) {
	var wg sync.WaitGroup
	for _, p := range plans {
		if p.done() || p.m == nil || len(p.m.Tests) == 0 || !(p.due || p.applied) {
			continue
		}
		wg.Go(func() {
			reason := l.runServiceTests(ctx, cfg, p)
			if reason == "" {
				return
			}
			if slices.Contains(g.entered[p.group()], p) {
				p.finish(ResultFailed, reason) // verify rolls the group back
				return
			}
			l.rollback(ctx, []*plan{p}, reason)
		})
	}
	wg.Wait()
	for _, p := range plans { // the goroutines are done: the run owns the map again
		if p.report.Result == ResultFailed {
			delete(l.provisioned, p.sc.Service) // applied and tested again next run
		}
	}
}

// runServiceTests runs one service's tests and says why they failed, ""
// when all passed.
func (l *Listener) runServiceTests(ctx context.Context, cfg *Config, p *plan) string {
	vars := manifest.TestVars(p.m, cfg.addrOf(p.sc), p.sc.Port, cfg.Node, cfg.Region)
	env := templates.WithEnv(l.provisionEnv(cfg, p))
	for _, t := range p.m.Tests {
		res := l.commands.Test(ctx, cfg.Allow, cfg.File, p.sc.Service, t, vars, env)
		p.report.Tests = append(p.report.Tests, res)
		l.metrics.TestFinished(p.sc.Service, res.Passed)
		log := l.log.With("service", p.sc.Service, "test", t.Name, "command", res.Command, "took", res.Duration.Round(time.Millisecond))
		if res.Passed {
			log.Info("test passed")
			continue
		}
		log.Error("test failed; the service's apply is undone", "err", res.Error, "output", res.Output)
		return fmt.Sprintf("test %s failed: %s", t.Name, res.Error)
	}
	return ""
}

package listener

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// gate is a run's hold on the rollout groups of the services it applies.
type gate struct {
	entered  map[string][]*plan // group → its services in this run
	releases []func() error
	started  time.Time
}

// enterRollouts takes a slot in each rollout group with something to
// apply, in name order so that nodes in several groups cannot deadlock.
// A halted group's services render and check their files but apply
// nothing.
func (l *Listener) enterRollouts(ctx context.Context, cfg *Config, active []*plan) *gate {
	g := &gate{entered: map[string][]*plan{}}
	byGroup := map[string][]*plan{}
	for _, p := range active {
		if grp := p.group(); grp != "" && (p.due || p.changes()) {
			byGroup[grp] = append(byGroup[grp], p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byGroup)) {
		plans := byGroup[name]
		if err := l.enterRollout(ctx, cfg, g, name, plans); err != nil {
			for _, p := range plans {
				if !p.done() {
					p.finish(ResultFailed, err.Error())
				}
			}
		}
	}
	g.started = time.Now()
	return g
}

func (l *Listener) enterRollout(ctx context.Context, cfg *Config, g *gate, name string, plans []*plan) error {
	rg, err := l.reg.Rollout(l.fed, name)
	if err != nil {
		return err
	}
	if halted, err := l.haltedStage(ctx, rg, name, plans); err != nil || halted {
		return err
	}
	limit := plans[0].m.Rollout.Concurrency
	l.log.Info("waiting for a rollout slot", "group", name, "concurrency", limit)
	release, err := rg.Acquire(ctx, cfg.Node, limit)
	if err != nil {
		return fmt.Errorf("rollout group %s: %w", name, err)
	}
	// Another node may have halted the group while this one waited.
	if halted, err := l.haltedStage(ctx, rg, name, plans); err != nil || halted {
		_ = release()
		return err
	}
	g.releases = append(g.releases, release)
	g.entered[name] = plans
	return nil
}

// haltedStage reports whether the group is halted; if it is, it stages and
// checks the services' changed files and marks them halted.
func (l *Listener) haltedStage(ctx context.Context, rg *registry.RolloutGroup, name string, plans []*plan) (bool, error) {
	h, err := rg.Halted(ctx)
	if err != nil || h == nil {
		return false, err
	}
	by := h.Node
	if by == "" {
		by = "an unknown node"
	}
	reason := fmt.Sprintf("rollout group %s halted by %s at %s: %s; staged, not applied (patchbay rollout resume %s)", name, by, h.At.Format(time.RFC3339), h.Reason, name)
	for _, p := range plans {
		for _, f := range p.files {
			if !p.changesFile(f) {
				continue
			}
			if err := templates.Check(ctx, f.content, f.file); err != nil {
				f.report.Error = "staged: " + err.Error()
			}
		}
		p.finish(ResultHalted, reason)
	}
	l.log.Warn("rollout group halted: staged, not applied", "group", name, "halted_by", by, "reason", h.Reason)
	return true, nil
}

func (p *plan) changesFile(f *rendered) bool {
	return !f.existed || !bytes.Equal(f.previous, f.content)
}

func (p *plan) changes() bool { return slices.ContainsFunc(p.files, p.changesFile) }

// release gives every slot back.
func (g *gate) release() {
	for _, r := range g.releases {
		_ = r()
	}
}

// verify waits for the health of each entered group's instances; a group
// whose services failed to apply or stay unhealthy is rolled back and
// halted.
func (g *gate) verify(ctx context.Context, l *Listener, cfg *Config) {
	var wg sync.WaitGroup
	for name, plans := range g.entered {
		wg.Go(func() {
			reason := l.rolloutFailure(ctx, plans, g.started)
			if reason == "" {
				return
			}
			l.rollback(ctx, plans, reason)
			l.halt(ctx, cfg, name, reason)
		})
	}
	wg.Wait()
}

// rolloutFailure says why a group's apply failed on this node, "" if it
// did not: a failed service, or an instance not healthy in time.
func (l *Listener) rolloutFailure(ctx context.Context, plans []*plan, applied time.Time) string {
	for _, p := range plans {
		if p.report.Result == ResultFailed {
			return p.sc.Service + ": " + p.report.Reason
		}
	}
	for _, p := range plans {
		if err := l.waitHealthy(ctx, p, applied); err != nil {
			return p.sc.Service + ": " + err.Error()
		}
	}
	return ""
}

// waitHealthy waits until the instance's health check passes after the
// apply: at least one check interval after it, so the check has looked at
// the new files.
func (l *Listener) waitHealthy(ctx context.Context, p *plan, applied time.Time) error {
	owner := (*l.owners.Load())[p.sc.Service]
	if owner == nil || p.m.Health == nil {
		return nil // nothing registered to watch: applying is the whole step
	}
	timeout := time.Duration(p.m.Rollout.HealthTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	settled := applied.Add(time.Duration(p.m.Health.Interval) + 500*time.Millisecond)
	var (
		index uint64
		last  registry.CheckState
	)
	for {
		wait := max(time.Until(settled), time.Second)
		st, next, err := l.reg.WatchHealth(ctx, p.sc.Service, owner.ID(), index, wait)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("health check not passing %s after applying (status %s%s)", timeout, cmp.Or(last.Status, "unknown"), outputOf(last))
		case err != nil:
			l.log.Warn("cannot read the health check; retrying", "instance", owner.ID(), "err", err)
			index = 0 // ask again without blocking on a stale index, after a pause
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		last, index = st, next
		if st.Status == api.HealthPassing && !time.Now().Before(settled) {
			return nil
		}
	}
}

func outputOf(st registry.CheckState) string {
	out := strings.TrimSpace(st.Output)
	if out == "" {
		return ""
	}
	if len(out) > 200 {
		out = out[:200] + "…"
	}
	return ": " + out
}

// rollback puts back what the services (a rollout group's, or one whose
// test failed) had before the run, and reloads once per distinct reload
// command.
func (l *Listener) rollback(ctx context.Context, plans []*plan, reason string) {
	l.log.Error("apply failed; restoring the previous files", "reason", reason)
	ctx = context.WithoutCancel(ctx) // a rollback must finish even on shutdown
	// One reload per distinct command, with the longest timeout of the
	// templates that share it.
	reloads := map[string]reloadJob{}
	for _, p := range plans {
		for _, f := range p.files {
			if !f.changed {
				continue
			}
			if err := l.restore(ctx, f); err != nil {
				l.log.Error("cannot restore the previous file", "file", f.file.Destination, "err", err)
				continue
			}
			f.report.Changed = false
			if len(f.spec.Reload) > 0 {
				key := strings.Join(f.spec.Reload, "\x00")
				j := reloads[key]
				reloads[key] = reloadJob{argv: f.spec.Reload, timeout: max(j.timeout, time.Duration(f.spec.Timeout))}
			}
		}
		p.finish(ResultFailed, "rolled back: "+reason)
	}
	for _, j := range reloads {
		if err := l.commands.Run(ctx, j.argv, j.timeout); err != nil {
			l.log.Error("reload after rollback failed", "command", strings.Join(j.argv, " "), "err", err, templates.OutputAttr(err))
		}
	}
}

func (l *Listener) restore(ctx context.Context, f *rendered) error {
	if !f.existed {
		l.files.Forget(f.file.Destination)
		if err := os.Remove(f.file.Destination); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	_, err := l.files.Install(ctx, f.previous, f.file, f.spec.Reload, time.Duration(f.spec.Timeout))
	return err
}

// halt sets the group's halt flag so that its other nodes stop applying.
func (l *Listener) halt(ctx context.Context, cfg *Config, group, reason string) {
	rg, err := l.reg.Rollout(l.fed, group)
	if err == nil {
		// Set even on shutdown; the registry client bounds the write by
		// its timeout (--timeout).
		err = rg.SetHalt(context.WithoutCancel(ctx), registry.Halt{Node: cfg.Node, Reason: reason, At: time.Now()})
	}
	if err != nil {
		l.log.Error("cannot set the halt flag; other nodes of the group may apply the same change", "group", group, "err", err)
		return
	}
	l.log.Error("rollout group halted", "group", group, "reason", reason)
}

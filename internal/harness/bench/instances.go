package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/registry"
)

// New instances the way users register them: each a `patchbay register`
// process, its latency counted from the process's start, so that its
// start-up, its manifest read, its catalog entry and its session and KV
// key are all in the figure, as they are for a host.

// registerProc starts `patchbay register` for one more provider and
// returns the line consumers will render for it, awaited from now.
func (e *env) registerProc(tag string) (*target, *proc, error) {
	e.seq++
	port := 20000 + e.seq
	node := fmt.Sprintf("provider-%d", e.seq)
	dir := filepath.Join(e.dir, tag, "register")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	t := e.obs.expect(fmt.Sprintf("127.0.0.1:%d\n", port), time.Now())
	p, err := startProc("register "+node, dir, filepath.Join(dir, node+".log"), []string{registry.SharedAgentsEnv + "=" + agentNode},
		e.cfg.Patchbay, "register", "provider", "--node", node, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--consul-addr", e.consulAddr)
	if err != nil {
		e.obs.drop(t)
		return nil, nil, err
	}
	return t, p, nil
}

// endRegistrations stops the register processes (SIGINT deregisters),
// forgets their lines and waits for the files to settle again.
func (e *env) endRegistrations(ctx context.Context, fleets map[kind]*fleet, ts []*target, procs []*proc) error {
	stopAll(procs, 10*time.Second)
	for _, t := range ts {
		e.obs.drop(t)
	}
	return e.settle(ctx, fleets)
}

// newInstances starts one `patchbay register` process every Interval,
// Instances of them, and measures each in every file.
func (e *env) newInstances(ctx context.Context, n int, fleets map[kind]*fleet, tag string) (*Scenario, error) {
	count := e.cfg.Instances
	e.logf("N=%d: %d `patchbay register` processes, one every %s", n, count, e.cfg.Interval)
	before := snapshot(fleets)
	var ts []*target
	var procs []*proc
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for i := range count {
		if i > 0 {
			select { // paces the registrations; not a wait for a result
			case <-ctx.Done():
				stopAll(procs, time.Second)
				return nil, ctx.Err()
			case <-tick.C:
			}
		}
		t, p, err := e.registerProc(tag)
		if err != nil {
			stopAll(procs, time.Second)
			return nil, err
		}
		ts, procs = append(ts, t), append(procs, p)
	}
	figs, err := e.measure(ctx, fleets, before, 90*time.Second, ts...)
	if err != nil {
		stopAll(procs, time.Second)
		return nil, err
	}
	s := &Scenario{N: n, Fleets: figs, Note: fmt.Sprintf("%d `patchbay register` processes, one every %s; from each process's start", count, e.cfg.Interval)}
	return s, e.endRegistrations(ctx, fleets, ts, procs)
}

// newInstancesAlone is newInstances for each fleet while the other is
// paused (SIGSTOP), as oneProviderAlone is for one provider: side by side
// on two cores, the fleet a change reaches first takes the CPUs, and
// patchbay's resolver and listeners, one hop later, wait behind
// consul-template's renders.
func (e *env) newInstancesAlone(ctx context.Context, n int, fleets map[kind]*fleet, tag string) (*Scenario, error) {
	figs := map[string]*Figures{}
	for _, k := range []kind{consulTemplate, patchbay} {
		resume := pauseAllBut(fleets, k)
		s, err := e.newInstances(ctx, n, map[kind]*fleet{k: fleets[k]}, tag+"-alone")
		resume()
		if err != nil {
			return nil, err
		}
		figs[k.String()] = s.Fleets[k.String()]
		if err := e.settle(ctx, fleets); err != nil {
			return nil, err
		}
	}
	return &Scenario{N: n, Fleets: figs, Note: "each fleet measured while the other is paused"}, nil
}

// registerBurst starts RegisterBurst `patchbay register` processes at
// once and counts each file's rewrites until every file holds them all.
func (e *env) registerBurst(ctx context.Context, n int, fleets map[kind]*fleet, tag string) (*Scenario, error) {
	count := e.cfg.RegisterBurst
	e.logf("N=%d: burst of %d `patchbay register` processes", n, count)
	before, rw0 := snapshot(fleets), map[kind][]int{}
	for k, f := range fleets {
		rw0[k] = e.obs.rewrites(f.files)
	}
	var ts []*target
	var procs []*proc
	for range count {
		t, p, err := e.registerProc(tag)
		if err != nil {
			stopAll(procs, time.Second)
			return nil, err
		}
		ts, procs = append(ts, t), append(procs, p)
	}
	figs, err := e.measure(ctx, fleets, before, 3*time.Minute, ts...)
	if err == nil {
		err = e.settle(ctx, fleets)
	}
	if err != nil {
		stopAll(procs, time.Second)
		return nil, err
	}
	for k, f := range fleets {
		rw := e.obs.rewrites(f.files)
		var per []float64
		for i := range rw {
			per = append(per, float64(rw[i]-rw0[k][i]))
		}
		figs[k.String()].ReloadsMean = Mean(per)
	}
	s := &Scenario{N: n, Fleets: figs, Note: fmt.Sprintf("%d `patchbay register` processes started at once; from the burst's start", count)}
	return s, e.endRegistrations(ctx, fleets, ts, procs)
}

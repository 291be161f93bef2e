package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The cost of one change on one host: the CPU time and context switches
// each consumer process spent between a change and its file holding it,
// read from /proc for every thread (what getrusage would say of the
// process), for both fleets in the same run.

// procUsage is what one consumer process had used at one moment.
type procUsage struct {
	cpu      time.Duration
	switches int64 // voluntary and involuntary, every thread
}

func fleetUsage(f *fleet) ([]procUsage, error) {
	us := make([]procUsage, len(f.procs))
	for i, p := range f.procs {
		u, err := threadsUsage(p.pid())
		if err != nil {
			return nil, err
		}
		us[i] = u
	}
	return us, nil
}

// perConsumer sets fig's mean CPU milliseconds and context switches per
// consumer from before to now.
func perConsumer(fig *Figures, f *fleet, before []procUsage) error {
	now, err := fleetUsage(f)
	if err != nil || len(now) == 0 || len(now) != len(before) {
		return err
	}
	var cpu, sw []float64
	for i := range now {
		cpu = append(cpu, float64(now[i].cpu-before[i].cpu)/float64(time.Millisecond))
		sw = append(sw, float64(now[i].switches-before[i].switches))
	}
	fig.CPUMsPerConsumer, fig.SwitchesPerConsumer = Mean(cpu), Mean(sw)
	return nil
}

// threadsUsage sums, over every thread of pid, the time on a CPU in
// nanoseconds (/proc/PID/task/*/schedstat: /proc/PID/stat counts 10 ms
// ticks, coarser than a change costs) and the context switches.
func threadsUsage(pid int) (procUsage, error) {
	var u procUsage
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return u, fmt.Errorf("bench: threads of %d: %v", pid, err)
	}
	for _, t := range tasks {
		sched, err := os.ReadFile(filepath.Join(t, "schedstat"))
		if err != nil {
			continue // a thread that ended meanwhile
		}
		f := bytes.Fields(sched)
		if len(f) == 0 {
			return u, fmt.Errorf("bench: %s/schedstat: empty", t)
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return u, fmt.Errorf("bench: %s/schedstat: %w", t, err)
		}
		u.cpu += time.Duration(ns)
		sw, err := switchesOf(filepath.Join(t, "status"))
		if err != nil {
			return u, err
		}
		u.switches += sw
	}
	return u, nil
}

// switchesOf reads a thread's voluntary and involuntary context switches.
func switchesOf(status string) (int64, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, nil // a thread that ended meanwhile
	}
	var sum int64
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		for _, p := range [][]byte{[]byte("voluntary_ctxt_switches:"), []byte("nonvoluntary_ctxt_switches:")} {
			if v, ok := bytes.CutPrefix(s.Bytes(), p); ok {
				n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("bench: %s: %w", status, err)
				}
				sum += n
			}
		}
	}
	return sum, nil
}

// Cost is the cost row: the CPU and context switches one consumer of each
// kind spent per change, means over Changes changes (each a provider
// registered, from its registration until the consumer's file held it,
// plus grace), with one consumer of each kind running and nothing else.
// The median is there too: a garbage collection, a timer or Consul's own
// work lands in one change's window or another's, and moves the mean of 20
// by a tenth from run to run where the median stays.
type Cost struct {
	Changes     int                `json:"changes"`
	CPUMs       map[string]float64 `json:"cpu_ms_per_change"`
	CPUMsMedian map[string]float64 `json:"cpu_ms_per_change_median"`
	Switches    map[string]float64 `json:"context_switches_per_change"`
}

// costPerChange measures Cost: one consul-template, one patchbay listener
// and the floor consumer (cmd/floor), which only receives, decodes and
// writes. One consumer each keeps the figure the consumer's own: with a
// fleet on two cores, what each process spends grows with the wait for a
// CPU. Each change is undone (the provider deregistered, the files
// settled) before the next, so that every binding has the same size.
func (e *env) costPerChange(ctx context.Context, changes int) (*Cost, error) {
	e.logf("cost of one change: one consumer of each kind and the floor consumer, %d changes", changes)
	fleets := map[kind]*fleet{}
	defer func() {
		for _, f := range fleets {
			f.stop()
			e.obs.forget(f.files)
		}
	}()
	kinds := []kind{consulTemplate, patchbay, floor}
	for _, k := range kinds {
		f, err := e.startFleet(ctx, k, 1, "cost")
		if err != nil {
			return nil, err
		}
		fleets[k] = f
	}
	c := &Cost{Changes: changes, CPUMs: map[string]float64{}, CPUMsMedian: map[string]float64{}, Switches: map[string]float64{}}
	cpu := map[kind][]time.Duration{}
	for i := -1; i < changes; i++ { // the first change, not counted, brings the floor's file up to date
		used, err := e.costOfOne(ctx, fleets, kinds)
		if err != nil {
			return nil, err
		}
		for k, u := range used {
			if i >= 0 {
				c.CPUMs[k.String()] += float64(u.cpu) / float64(time.Millisecond) / float64(changes)
				c.Switches[k.String()] += float64(u.switches) / float64(changes)
				cpu[k] = append(cpu[k], u.cpu)
			}
		}
	}
	for k, ds := range cpu {
		c.CPUMsMedian[k.String()] = float64(Percentile(ds, 50)) / float64(time.Millisecond)
	}
	return c, nil
}

// costOfOne registers one provider, waits until every consumer's file
// holds it plus grace, reads what each consumer used meanwhile, then
// deregisters the provider and waits for the files to settle.
func (e *env) costOfOne(ctx context.Context, fleets map[kind]*fleet, kinds []kind) (map[kind]procUsage, error) {
	before := map[kind]procUsage{}
	var files []string
	for _, k := range kinds {
		u, err := threadsUsage(fleets[k].procs[0].pid())
		if err != nil {
			return nil, err
		}
		before[k], files = u, append(files, fleets[k].files...)
	}
	t, err := e.register(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.obs.awaitAll(ctx, 30*time.Second, files, t); err != nil {
		return nil, fmt.Errorf("bench: cost of one change: %w", err)
	}
	if err := sleepCtx(ctx, grace); err != nil { // the window's end, as in every CPU row; not a wait for a result
		return nil, err
	}
	used := map[kind]procUsage{}
	for _, k := range kinds {
		u, err := threadsUsage(fleets[k].procs[0].pid())
		if err != nil {
			return nil, err
		}
		used[k] = procUsage{cpu: u.cpu - before[k].cpu, switches: u.switches - before[k].switches}
	}
	if err := e.deregisterLast(ctx, 1); err != nil {
		return nil, err
	}
	return used, e.quiet(ctx, files, e.cfg.Settle, time.Minute)
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rows are the cost row's lines of the table.
func (c *Cost) rows() []row {
	ct, pb, fl := consulTemplate.String(), patchbay.String(), floor.String()
	cpu := func(k string) string { return fmt.Sprintf("%.2f", c.CPUMs[k]) }
	median := func(k string) string { return fmt.Sprintf("%.2f", c.CPUMsMedian[k]) }
	sw := func(k string) string { return fmt.Sprintf("%.0f", c.Switches[k]) }
	return []row{
		{fmt.Sprintf("cost of one change, one consumer each, mean of %d changes: CPU ms", c.Changes), cpu(ct), cpu(pb), ratio(Ratio(c.CPUMs[pb], c.CPUMs[ct]))},
		{"same, median of the changes: CPU ms", median(ct), median(pb), ratio(Ratio(c.CPUMsMedian[pb], c.CPUMsMedian[ct]))},
		{"same: context switches", sw(ct), sw(pb), ratio(Ratio(c.Switches[pb], c.Switches[ct]))},
		{"same, the floor consumer (receives, decodes, writes with fsync; `cmd/floor`) in patchbay's column: CPU ms", cpu(ct), cpu(fl), ratio(Ratio(c.CPUMs[fl], c.CPUMs[ct]))},
		{"same, the floor consumer: context switches", sw(ct), sw(fl), ratio(Ratio(c.Switches[fl], c.Switches[ct]))},
	}
}

package bench

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// grace is how long after a fleet's last file changed its proxy is still
// counted: the writes a run makes after installing (patchbay's status)
// belong to the change.
const grace = 250 * time.Millisecond

// Figures are one fleet's figures in one scenario. Times are seconds.
type Figures struct {
	Requests          int            `json:"requests"`
	Classes           map[string]int `json:"classes"`
	Paths             map[string]int `json:"paths,omitempty"` // requests by method and path prefix
	P50               float64        `json:"p50_s,omitempty"`
	P99               float64        `json:"p99_s,omitempty"`
	Max               float64        `json:"max_s,omitempty"`
	Missing           int            `json:"missing,omitempty"` // files that never held a change within the limit
	ReloadsMean       float64        `json:"reloads_per_consumer,omitempty"`
	ReloadsMax        int            `json:"reloads_max,omitempty"`
	RequestsPerMin    float64        `json:"requests_per_minute,omitempty"`
	CPUPerMin         float64        `json:"cpu_seconds_per_minute,omitempty"`
	ResolverCPUPerMin float64        `json:"resolver_cpu_seconds_per_minute,omitempty"` // part of CPUPerMin
	RSSMeanMB         float64        `json:"rss_mean_mb,omitempty"`
	RSSMaxMB          float64        `json:"rss_max_mb,omitempty"`
	// One change's cost on each consumer (cost.go): CPU and context
	// switches from the registration until the file held it, plus grace.
	CPUMsPerConsumer    float64 `json:"cpu_ms_per_consumer,omitempty"`
	SwitchesPerConsumer float64 `json:"context_switches_per_consumer,omitempty"`
}

// Scenario is the figures of every fleet in one scenario at one size.
type Scenario struct {
	N      int                 `json:"n"`
	Note   string              `json:"note,omitempty"`
	Fleets map[string]*Figures `json:"fleets"`
	// Providers is how many providers the changed binding holds after the
	// change, where its size matters (the fleet simulation).
	Providers int `json:"providers,omitempty"`
}

func classes(c Counts) map[string]int {
	m := map[string]int{}
	for i, v := range c {
		m[Class(i).String()] = v
	}
	return m
}

// counts is what a fleet's proxy had passed at one moment.
type counts struct {
	classes Counts
	paths   map[string]int
}

func snapshot(fleets map[kind]*fleet) map[kind]counts {
	m := map[kind]counts{}
	for k, f := range fleets {
		m[k] = counts{f.proxy.Counts(), f.proxy.ByPath()}
	}
	return m
}

// since is the figures of what f's proxy passed since before.
func since(f *fleet, before counts) *Figures {
	c := f.proxy.Counts().Sub(before.classes)
	return &Figures{Requests: c.Total(), Classes: classes(c), Paths: subPaths(f.proxy.ByPath(), before.paths)}
}

// measure waits until every file of every fleet holds each of ts's lines
// (at most limit), taking each fleet's Consul requests since before when
// that fleet converged plus grace, and its latencies over all files and
// lines.
func (e *env) measure(ctx context.Context, fleets map[kind]*fleet, before map[kind]counts, limit time.Duration, ts ...*target) (map[string]*Figures, error) {
	converged := map[kind]time.Time{}
	counted := map[kind]*Figures{}
	err := poll(ctx, limit, 5*time.Millisecond, func() bool {
		for k, f := range fleets {
			if _, ok := counted[k]; ok {
				continue
			}
			at, ok := converged[k]
			switch {
			case !ok && e.obs.all(f.files, ts...):
				converged[k] = time.Now()
			case ok && time.Since(at) >= grace:
				counted[k] = since(f, before[k])
			}
		}
		return len(counted) == len(fleets)
	})
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	out := map[string]*Figures{}
	for k, f := range fleets {
		fig, ok := counted[k]
		if !ok { // timed out: what it cost so far
			fig = since(f, before[k])
		}
		var ds []time.Duration
		for _, t := range ts {
			d, missing := e.obs.latencies(t, f.files)
			ds = append(ds, d...)
			fig.Missing += missing
		}
		fig.P50, fig.P99, fig.Max = Percentile(ds, 50).Seconds(), Percentile(ds, 99).Seconds(), Percentile(ds, 100).Seconds()
		out[k.String()] = fig
	}
	return out, nil
}

// oneProvider registers one provider and measures until every file holds
// it.
func (e *env) oneProvider(ctx context.Context, n int, fleets map[kind]*fleet) (*Scenario, error) {
	e.logf("N=%d: one new provider", n)
	before, used := snapshot(fleets), map[kind][]procUsage{}
	for k, f := range fleets {
		u, err := fleetUsage(f)
		if err != nil {
			return nil, err
		}
		used[k] = u
	}
	t, err := e.register(ctx)
	if err != nil {
		return nil, err
	}
	figs, err := e.measure(ctx, fleets, before, time.Minute, t)
	if err != nil {
		return nil, err
	}
	for k, f := range fleets {
		if err := perConsumer(figs[k.String()], f, used[k]); err != nil {
			return nil, err
		}
	}
	return &Scenario{N: n, Fleets: figs}, e.settle(ctx, fleets)
}

// oneProviderAlone measures one new provider in each fleet while the
// other fleet is paused (SIGSTOP). Side by side on a machine of few cores,
// the consumers the change reaches first take the CPUs, and the other
// fleet's figure is mostly the wait behind them; alone, each figure is the
// tool's own path from registration to file.
func (e *env) oneProviderAlone(ctx context.Context, n int, fleets map[kind]*fleet) (*Scenario, error) {
	e.logf("N=%d: one new provider, each fleet alone", n)
	figs := map[string]*Figures{}
	for _, k := range []kind{consulTemplate, patchbay} {
		alone := map[kind]*fleet{k: fleets[k]}
		resume := pauseAllBut(fleets, k)
		before := snapshot(alone)
		t, err := e.register(ctx)
		if err == nil {
			var got map[string]*Figures
			got, err = e.measure(ctx, alone, before, time.Minute, t)
			figs[k.String()] = got[k.String()]
		}
		resume()
		if err != nil {
			return nil, err
		}
		if err := e.settle(ctx, fleets); err != nil {
			return nil, err
		}
	}
	return &Scenario{N: n, Fleets: figs, Note: "each fleet measured while the other is paused"}, nil
}

// pauseAllBut stops every fleet but k's processes; the returned function
// lets them go on.
func pauseAllBut(fleets map[kind]*fleet, k kind) (resume func()) {
	var paused []*proc
	for other, f := range fleets {
		if other != k {
			paused = append(paused, f.procs...)
		}
	}
	for _, p := range paused {
		p.signal(syscall.SIGSTOP)
	}
	return func() {
		for _, p := range paused {
			p.signal(syscall.SIGCONT)
		}
	}
}

// periodic registers one provider every Interval for Duration and
// measures each change's latency in every file.
func (e *env) periodic(ctx context.Context, n int, fleets map[kind]*fleet) (*Scenario, error) {
	count := int(e.cfg.Duration / e.cfg.Interval)
	e.logf("N=%d: one change every %s for %s (%d changes)", n, e.cfg.Interval, e.cfg.Duration, count)
	before := snapshot(fleets)
	var ts []*target
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for i := range count {
		if i > 0 {
			select { // paces the changes; not a wait for a result
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-tick.C:
			}
		}
		t, err := e.register(ctx)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	figs, err := e.measure(ctx, fleets, before, 90*time.Second, ts...)
	if err != nil {
		return nil, err
	}
	for _, f := range figs {
		f.Requests = f.Requests / max(count, 1) // per change
	}
	s := &Scenario{N: n, Fleets: figs, Note: fmt.Sprintf("%d changes, every %s; requests per change", count, e.cfg.Interval)}
	return s, e.settle(ctx, fleets)
}

// idle measures the fleets doing nothing for Idle: Consul requests and CPU
// per minute, and memory per consumer. patchbay's CPU includes the
// resolver's.
func (e *env) idle(ctx context.Context, n int, fleets map[kind]*fleet) (*Scenario, error) {
	e.logf("N=%d: idle for %s", n, e.cfg.Idle)
	procsOf := func(k kind) []*proc {
		ps := fleets[k].procs
		if k == patchbay {
			ps = append(slices.Clone(ps), e.resolver)
		}
		return ps
	}
	before, cpu0 := snapshot(fleets), map[kind]time.Duration{}
	res0, err := cpuTime(e.resolver.pid())
	if err != nil {
		return nil, err
	}
	for k := range fleets {
		d, err := fleetCPU(procsOf(k))
		if err != nil {
			return nil, err
		}
		cpu0[k] = d
	}
	start := time.Now()
	select { // the measurement itself: a fixed stretch of idleness
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(e.cfg.Idle):
	}
	perMin := time.Minute.Seconds() / time.Since(start).Seconds()
	s := &Scenario{N: n, Fleets: map[string]*Figures{}, Note: "per minute; patchbay's CPU includes the resolver"}
	for k, f := range fleets {
		fig := since(f, before[k])
		cpu, err := fleetCPU(procsOf(k))
		if err != nil {
			return nil, err
		}
		fig.RequestsPerMin, fig.CPUPerMin = float64(fig.Requests)*perMin, (cpu-cpu0[k]).Seconds()*perMin
		if k == patchbay {
			res, err := cpuTime(e.resolver.pid())
			if err != nil {
				return nil, err
			}
			fig.ResolverCPUPerMin = (res - res0).Seconds() * perMin
		}
		var rss []float64
		for _, p := range f.procs {
			b, err := rssBytes(p.pid())
			if err != nil {
				return nil, err
			}
			rss = append(rss, float64(b)/(1<<20))
		}
		fig.RSSMeanMB, fig.RSSMaxMB = Mean(rss), slices.Max(rss)
		s.Fleets[k.String()] = fig
	}
	return s, nil
}

// burst registers Burst providers at once, with a third fleet of
// consul-template with wait 1s:10s, and counts the rewrites of each file
// until every file holds every new provider and the files are quiet.
func (e *env) burst(ctx context.Context, n int, fleets map[kind]*fleet, tag string) (*Scenario, error) {
	e.logf("N=%d: starting %d consul-template processes with wait 1s:10s", n, n)
	w, err := e.startFleet(ctx, consulTemplateWait, n, tag)
	if err != nil {
		return nil, err
	}
	defer func() { w.stop(); e.obs.forget(w.files) }()
	all := map[kind]*fleet{consulTemplateWait: w}
	for k, f := range fleets {
		all[k] = f
	}
	if err := e.settle(ctx, all); err != nil {
		return nil, err
	}
	e.logf("N=%d: burst of %d registrations", n, e.cfg.Burst)
	before, rw0 := snapshot(all), map[kind][]int{}
	for k, f := range all {
		rw0[k] = e.obs.rewrites(f.files)
	}
	ts, err := e.registerAll(ctx, e.cfg.Burst)
	if err != nil {
		return nil, err
	}
	figs, err := e.measure(ctx, all, before, 3*time.Minute, ts...)
	if err != nil {
		return nil, err
	}
	if err := e.settle(ctx, all); err != nil {
		return nil, err
	}
	for k, f := range all {
		rw := e.obs.rewrites(f.files)
		var per []float64
		most := 0
		for i := range rw {
			d := rw[i] - rw0[k][i]
			per = append(per, float64(d))
			most = max(most, d)
		}
		figs[k.String()].ReloadsMean, figs[k.String()].ReloadsMax = Mean(per), most
	}
	e.logf("N=%d: deregistering the burst's %d providers", n, len(ts))
	if err := e.deregisterLast(ctx, len(ts)); err != nil {
		return nil, err
	}
	if err := e.settle(ctx, all); err != nil {
		return nil, err
	}
	return &Scenario{N: n, Fleets: figs, Note: fmt.Sprintf("%d registrations; latency until a file holds each", e.cfg.Burst)}, nil
}

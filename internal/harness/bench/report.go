package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Results are the figures of one run, as `--json` writes them.
type Results struct {
	Started  time.Time  `json:"started"`
	Elapsed  string     `json:"elapsed"`
	Cost     *Cost      `json:"cost_per_change,omitempty"`
	One      []Scenario `json:"one_new_provider"`
	Alone    *Scenario  `json:"one_new_provider_alone,omitempty"`
	Periodic *Scenario  `json:"periodic,omitempty"`
	Idle     *Scenario  `json:"idle,omitempty"`
	Burst    *Scenario  `json:"burst,omitempty"`
	Sim      []Scenario `json:"fleet_simulation,omitempty"`
	Fanout   []Fanout   `json:"fanout,omitempty"`
	// `patchbay register` processes (instances.go)
	Instances      *Scenario `json:"register_processes,omitempty"`
	InstancesAlone *Scenario `json:"register_processes_alone,omitempty"`
	RegisterBurst  *Scenario `json:"register_burst,omitempty"`
}

// row is one line of the table: consul-template's figure, patchbay's, and
// patchbay's over consul-template's.
type row struct{ what, ct, pb, ratio string }

var (
	ctName = consulTemplate.String()
	pbName = patchbay.String()
)

// Table writes the results as one Markdown table, then the requests of
// each scenario by class.
func (r *Results) Table(w io.Writer, periodic string) {
	var rows []row
	if r.Cost != nil {
		rows = append(rows, r.Cost.rows()...)
	}
	for _, s := range r.One {
		ct, pb := s.Fleets[ctName], s.Fleets[pbName]
		rows = append(rows,
			countRow(fmt.Sprintf("one new provider, N=%d: Consul requests until all files hold it", s.N), ct, pb, func(f *Figures) float64 { return float64(f.Requests) }, "%.0f"),
			latencyRow(fmt.Sprintf("same, N=%d: time until each file holds it, p50 / p99 (s)", s.N), ct, pb))
		if ct != nil && ct.CPUMsPerConsumer > 0 {
			rows = append(rows,
				countRow(fmt.Sprintf("same, N=%d: CPU ms per consumer for the change", s.N), ct, pb, func(f *Figures) float64 { return f.CPUMsPerConsumer }, "%.1f"),
				countRow(fmt.Sprintf("same, N=%d: context switches per consumer for the change", s.N), ct, pb, func(f *Figures) float64 { return f.SwitchesPerConsumer }, "%.0f"))
		}
	}
	if s := r.Alone; s != nil {
		rows = append(rows, latencyRow(fmt.Sprintf("same, N=%d, each fleet alone (the other paused): p50 / p99 (s)", s.N), s.Fleets[ctName], s.Fleets[pbName]))
	}
	if s := r.Burst; s != nil {
		ct, pb, wait := s.Fleets[ctName], s.Fleets[pbName], s.Fleets[consulTemplateWait.String()]
		reloads := func(f *Figures) float64 { return f.ReloadsMean }
		rows = append(rows,
			countRow(fmt.Sprintf("burst of %s, N=%d: reloads per consumer (no wait)", burstWhat(s), s.N), ct, pb, reloads, "%.1f"),
			countRow("same, consul-template with wait 1s:10s: reloads per consumer", wait, pb, reloads, "%.1f"),
			latencyRow("same: time until each file holds each registration, p50 / p99 (s)", ct, pb))
	}
	if s := r.Instances; s != nil {
		rows = append(rows, latencyRow(fmt.Sprintf("new instance by %s, N=%d: from the process's start until each file holds it, p50 / p99 (s)", burstWhat(s), s.N), s.Fleets[ctName], s.Fleets[pbName]))
	}
	if s := r.InstancesAlone; s != nil {
		rows = append(rows, latencyRow(fmt.Sprintf("same, N=%d, each fleet alone (the other paused): p50 / p99 (s)", s.N), s.Fleets[ctName], s.Fleets[pbName]))
	}
	if s := r.RegisterBurst; s != nil {
		ct, pb := s.Fleets[ctName], s.Fleets[pbName]
		rows = append(rows,
			countRow(fmt.Sprintf("burst of %s, N=%d: reloads per consumer", burstWhat(s), s.N), ct, pb, func(f *Figures) float64 { return f.ReloadsMean }, "%.1f"),
			latencyRow("same: time until each file holds each instance, p50 / p99 (s)", ct, pb))
	}
	if s := r.Periodic; s != nil {
		ct, pb := s.Fleets[ctName], s.Fleets[pbName]
		rows = append(rows,
			latencyRow(fmt.Sprintf("one change every %s, N=%d: latency p50 / p99 (s)", periodic, s.N), ct, pb),
			countRow("same: Consul requests per change", ct, pb, func(f *Figures) float64 { return float64(f.Requests) }, "%.0f"))
	}
	if s := r.Idle; s != nil {
		ct, pb := s.Fleets[ctName], s.Fleets[pbName]
		rows = append(rows,
			countRow(fmt.Sprintf("idle, N=%d: Consul requests per minute", s.N), ct, pb, func(f *Figures) float64 { return f.RequestsPerMin }, "%.0f"),
			countRow("idle: CPU seconds of the fleet per minute (patchbay: with the resolver)", ct, pb, func(f *Figures) float64 { return f.CPUPerMin }, "%.2f"),
			countRow("idle: RSS per consumer, mean (MB)", ct, pb, func(f *Figures) float64 { return f.RSSMeanMB }, "%.1f"))
	}
	for _, s := range r.Sim {
		sim := s.Fleets[simulated.String()]
		rows = append(rows,
			row{fmt.Sprintf("fleet simulation, %d listeners in one process, a binding of %d providers: one change in every file, p50 / p99 / max (s)", s.N, s.Providers), "—",
				fmt.Sprintf("%.2f / %.2f / %.2f%s", sim.P50, sim.P99, sim.Max, missed(sim)), ""},
			row{"same: Consul requests until all files hold it", "—", fmt.Sprint(sim.Requests), ""})
	}
	rows = append(rows, r.fanoutRows()...)
	fmt.Fprintln(w, "| scenario | consul-template | patchbay | ratio |")
	fmt.Fprintln(w, "| --- | --- | --- | --- |")
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.what, x.ct, x.pb, x.ratio)
	}
	fmt.Fprintln(w)
	r.classTable(w)
}

func burstWhat(s *Scenario) string {
	if s.Note != "" {
		return strings.SplitN(s.Note, ";", 2)[0]
	}
	return "registrations"
}

func countRow(what string, ct, pb *Figures, v func(*Figures) float64, format string) row {
	if ct == nil || pb == nil {
		return row{what, "—", "—", "—"}
	}
	a, b := v(ct), v(pb)
	return row{what, fmt.Sprintf(format, a), fmt.Sprintf(format, b), ratio(Ratio(b, a))}
}

func latencyRow(what string, ct, pb *Figures) row {
	if ct == nil || pb == nil {
		return row{what, "—", "—", "—"}
	}
	f := func(x *Figures) string { return fmt.Sprintf("%.2f / %.2f%s", x.P50, x.P99, missed(x)) }
	return row{what, f(ct), f(pb), ratio(Ratio(pb.P99, ct.P99)) + " (p99)"}
}

func missed(f *Figures) string {
	if f.Missing == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d never)", f.Missing)
}

func ratio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

// classTable lists each scenario's requests by class, for where the
// requests go.
func (r *Results) classTable(w io.Writer) {
	fmt.Fprintln(w, "Consul requests by class (blocking / other read / write / agent):")
	line := func(what string, s *Scenario) {
		if s == nil {
			return
		}
		var parts []string
		for _, k := range []kind{consulTemplate, consulTemplateWait, patchbay, simulated} {
			f := s.Fleets[k.String()]
			if f == nil {
				continue
			}
			c := f.Classes
			parts = append(parts, fmt.Sprintf("%s %d/%d/%d/%d", k, c["blocking"], c["read"], c["write"], c["agent"]))
		}
		fmt.Fprintf(w, "  %-34s %s\n", what, strings.Join(parts, ", "))
	}
	for i := range r.One {
		line(fmt.Sprintf("one new provider, N=%d:", r.One[i].N), &r.One[i])
	}
	line("burst (whole):", r.Burst)
	line("periodic (whole):", r.Periodic)
	line("idle (whole):", r.Idle)
	if r.Idle != nil && r.Idle.Fleets[pbName] != nil {
		fmt.Fprintf(w, "  %-34s %.2f CPU s per minute of patchbay's\n", "idle: the resolver's share:", r.Idle.Fleets[pbName].ResolverCPUPerMin)
	}
	for i := range r.Sim {
		line(fmt.Sprintf("fleet simulation, %d:", r.Sim[i].N), &r.Sim[i])
	}
}

// fanoutRows compare Consul's own fan-out (its column is consul-template's:
// the query is the one consul-template holds) with patchbay's.
func (r *Results) fanoutRows() []row {
	var rows []row
	for _, s := range r.Fanout {
		c, p := s.Ways[wayConsul], s.Ways[wayPatchbay]
		if c == nil || p == nil {
			continue
		}
		lat := func(f *FanoutFigures) string {
			return fmt.Sprintf("%.2f / %.2f / %.2f%s", f.P50, f.P99, f.Max, missed(&Figures{Missing: f.Missing}))
		}
		rows = append(rows,
			row{fmt.Sprintf("fan-out, N=%d watchers in one process (Consul's way: blocking queries; patchbay's: resolver + NATS subscriptions): time until each has one new provider, p50 / p99 / max (s)", s.N),
				lat(c), lat(p), ratio(Ratio(p.P99, c.P99)) + " (p99)"},
			row{"same: Consul CPU seconds for the change", fmt.Sprintf("%.3f", c.ConsulCPU), fmt.Sprintf("%.3f", p.ConsulCPU), ratio(Ratio(p.ConsulCPU, c.ConsulCPU))},
			row{"same: bytes Consul wrote for the change", fmt.Sprint(c.ConsulBytes), fmt.Sprint(p.ConsulBytes), ratio(Ratio(float64(p.ConsulBytes), float64(c.ConsulBytes)))},
			row{"same: NATS server CPU seconds for the change", "—", fmt.Sprintf("%.3f", p.NATSCPU), ""})
	}
	return rows
}

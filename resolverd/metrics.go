package resolverd

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// WithLeadershipHook calls fn(true) when this resolver starts leading and
// fn(false) when its term ends.
func WithLeadershipHook(fn func(leading bool)) LoopOption {
	return func(l *Loop) { l.onLeading = fn }
}

// Metrics are the resolver's Prometheus metrics, in a registry of their own
// (two resolvers in one process, as in tests, must not collide). Hook them
// into a Loop with Options; serve them with Handler.
type Metrics struct {
	reg        *prometheus.Registry
	passes     prometheus.Counter
	written    *prometheus.CounterVec
	bindings   prometheus.Gauge
	leader     prometheus.Gauge
	terms      prometheus.Counter
	duration   prometheus.Histogram
	lag        prometheus.Histogram
	lastPassTS prometheus.Gauge

	leading  atomic.Bool
	lastPass atomic.Int64 // unix nanoseconds; 0 before the first pass
}

// NewMetrics returns the resolver's metrics, with Go runtime and process
// metrics alongside.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_resolver_passes_total",
			Help: "Resolve passes finished by this resolver while leading: each resolves every service and writes the bindings that changed.",
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_resolver_bindings_written_total",
			Help: "Bindings stored in Consul by this resolver, by op: write (new or changed) or delete (service or region gone).",
		}, []string{"op"}),
		bindings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_resolver_bindings",
			Help: "Bindings (service × region) the last pass resolved.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_resolver_leader",
			Help: "1 while this resolver leads (resolves and writes); 0 while it stands by.",
		}),
		terms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_resolver_leadership_acquired_total",
			Help: "Times this resolver became the leader. More than one on a stable cluster means handovers: check Consul and the other resolvers.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patchbay_resolver_pass_duration_seconds",
			Help:    "Duration of a pass: resolving the snapshot and writing what changed (reading the snapshot excluded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms … 16s
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "patchbay_resolver_change_to_write_seconds",
			Help: "From the resolver seeing a registry change to the bindings it changes being written: the debounce (quiet window, max wait) plus the pass.",
			// Leading edge: milliseconds; a burst: up to the max wait (10s).
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		lastPassTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_resolver_last_pass_timestamp_seconds",
			Help: "Unix time of the last pass; 0 before the first. On the leader, time() minus this grows only while the registry is quiet.",
		}),
	}
	m.reg.MustRegister(m.passes, m.written, m.bindings, m.leader, m.terms, m.duration, m.lag, m.lastPassTS,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.written.WithLabelValues("write")
	m.written.WithLabelValues("delete")
	return m
}

// Options hooks the metrics into a Loop.
func (m *Metrics) Options() []LoopOption {
	return []LoopOption{WithPassHook(m.pass), WithLeadershipHook(m.leadership)}
}

func (m *Metrics) pass(p Pass) {
	m.passes.Inc()
	m.written.WithLabelValues("write").Add(float64(p.Written))
	m.written.WithLabelValues("delete").Add(float64(p.Deleted))
	m.bindings.Set(float64(p.Bindings))
	m.duration.Observe(p.Duration.Seconds())
	now := time.Now()
	if !p.Since.IsZero() && p.Written+p.Deleted > 0 {
		m.lag.Observe(now.Sub(p.Since).Seconds())
	}
	m.lastPassTS.Set(float64(now.UnixNano()) / 1e9)
	m.lastPass.Store(now.UnixNano())
}

func (m *Metrics) leadership(leading bool) {
	m.leading.Store(leading)
	if leading {
		m.leader.Set(1)
		m.terms.Inc()
	} else {
		m.leader.Set(0)
	}
}

// health is what GET /healthz answers.
type health struct {
	Status   string    `json:"status"`
	Leading  bool      `json:"leading"`
	LastPass time.Time `json:"last_pass,omitzero"`
}

// Handler serves GET /metrics (Prometheus) and GET /healthz (200 with
// {"status": "ok", "leading", "last_pass"} while the process runs: a
// standby is healthy too).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := health{Status: "ok", Leading: m.leading.Load()}
		if ns := m.lastPass.Load(); ns != 0 {
			h.LastPass = time.Unix(0, ns).UTC()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	return mux
}

package listener

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the listener's Prometheus metrics, served at GET /metrics of
// the control endpoint. They live in their own registry rather than the
// global one, so that two listeners in one process (tests, `patchbay dev`)
// do not collide and nothing a library registers globally leaks out.
//
// A nil *Metrics records nothing, so parts of the daemon can run without.
type Metrics struct {
	reg *prometheus.Registry

	provisions     *prometheus.CounterVec
	runDuration    prometheus.Histogram
	lastSuccess    prometheus.Gauge
	renderDuration prometheus.Histogram
	pending        prometheus.Gauge
	running        prometheus.Gauge
	paused         prometheus.Gauge
	coalesced      prometheus.Counter
	restores       *prometheus.CounterVec
	inputsRead     *prometheus.CounterVec
	malformed      prometheus.Counter
	statusWrites   prometheus.Counter
	refused        *prometheus.CounterVec
	more           moreMetrics // tests and region filtering (metrics_more.go)
	lb             lbMetrics

	mu            sync.Mutex
	lastCoalesced uint64 // QueueState.Coalesced as last seen, to add deltas
}

// NewMetrics returns the listener's metrics with Go runtime and process
// metrics alongside.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		provisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_provisions_total",
			Help: "Provision runs finished, by result: ok (every service applied), failed (a template, reload or provision command failed), " +
				"skipped (a service had unresolved requirements), halted (its rollout group is halted; staged, not applied).",
		}, []string{"result"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "patchbay_listener_run_duration_seconds",
			Help: "Duration of whole provision runs: reading bindings, rendering, checks, reloads and provision commands.",
			// Runs range from a re-render with nothing to do to a
			// configuration-management run of several minutes.
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_listener_last_success_timestamp_seconds",
			Help: "Unix time when a provision run last finished with result ok; 0 until one has. Alert on time() minus this to catch a node stuck failing.",
		}),
		renderDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "patchbay_listener_render_duration_seconds",
			Help:    "Duration of rendering one template from the bindings, before its check and install.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms … 16s
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_listener_queue_pending",
			Help: "1 while a provision run is queued and waiting for the quiet window, the throttle or a resume; else 0.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_listener_queue_running",
			Help: "1 while a provision run is in progress; else 0.",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_listener_queue_paused",
			Help: "1 while the listener is paused (patchbay pause): triggers are remembered, no run starts until patchbay resume; else 0.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_listener_triggers_coalesced_total",
			Help: "Triggers absorbed into an already queued provision run instead of causing a run of their own: the reload storms avoided.",
		}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_drift_restores_total",
			Help: "Rendered files restored after being edited or deleted by hand, by destination path. A rising count means something keeps changing the file.",
		}, []string{"path"}), // bounded: one value per template destination of this node
		inputsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_inputs_read_total",
			Help: "Provision runs by where they read the bindings: events (carried by NATS, no Consul request) or consul (start, a manifest change, an oversized binding, anti-entropy).",
		}, []string{"source"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_listener_events_malformed_total",
			Help: "NATS messages on patchbay's subjects that were not patchbay events and were ignored (logged at most every 10s).",
		}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_listener_status_writes_total",
			Help: "Writes of the node's status to Consul: one when a run's outcome differs from the last one recorded, never one per run.",
		}),
	}
	// Results are known in advance: exporting them at 0 from the start lets
	// rate() and increase() see the first run of each.
	for _, r := range []string{ResultOK, ResultFailed, ResultSkipped, ResultHalted} {
		m.provisions.WithLabelValues(r)
	}
	m.more = newMoreMetrics(m.reg)
	m.inputsRead.WithLabelValues("events")
	m.inputsRead.WithLabelValues("consul")
	m.refused = newRefusedCounter(m.reg)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.provisions, m.runDuration, m.lastSuccess, m.renderDuration,
		m.pending, m.running, m.paused, m.coalesced, m.restores,
		m.inputsRead, m.malformed, m.statusWrites,
	)
	m.lb = newLBMetrics(m.reg)
	return m
}

// Handler serves the metrics in Prometheus's exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails (the process collector on an unusual
		// platform) should not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	})
}

// RunFinished records a finished provision run with its result (ResultOK,
// ResultFailed, …), how long it took and when it finished.
func (m *Metrics) RunFinished(result string, d time.Duration, at time.Time) {
	if m == nil {
		return
	}
	m.provisions.WithLabelValues(result).Inc()
	m.runDuration.Observe(d.Seconds())
	if result == ResultOK {
		m.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
	}
}

// Rendered records how long rendering the node's templates took.
func (m *Metrics) Rendered(d time.Duration) {
	if m == nil {
		return
	}
	m.renderDuration.Observe(d.Seconds())
}

// QueueChanged records the queue's state each time its owner reports it.
func (m *Metrics) QueueChanged(s QueueState) {
	if m == nil {
		return
	}
	m.pending.Set(boolGauge(s.Pending))
	m.running.Set(boolGauge(s.Running))
	m.paused.Set(boolGauge(s.Paused))

	m.mu.Lock()
	defer m.mu.Unlock()
	// s.Coalesced is a running total and a Prometheus counter only goes up:
	// add what is new. A total below the last one means its source started
	// counting again (a new queue), so all of it is new.
	if s.Coalesced < m.lastCoalesced {
		m.lastCoalesced = 0
	}
	if delta := s.Coalesced - m.lastCoalesced; delta > 0 {
		m.coalesced.Add(float64(delta))
	}
	m.lastCoalesced = s.Coalesced
}

// Restored records that the rendered file at path was put back after it
// drifted.
func (m *Metrics) Restored(path string) {
	if m == nil {
		return
	}
	m.restores.WithLabelValues(path).Inc()
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// InputsRead records where a run read its bindings: "events" or "consul".
func (m *Metrics) InputsRead(source string) {
	if m == nil {
		return
	}
	m.inputsRead.WithLabelValues(source).Inc()
}

// Malformed records an ignored message that was not a patchbay event.
func (m *Metrics) Malformed() {
	if m == nil {
		return
	}
	m.malformed.Inc()
}

// StatusWritten records a write of the node's status to Consul.
func (m *Metrics) StatusWritten() {
	if m == nil {
		return
	}
	m.statusWrites.Inc()
}

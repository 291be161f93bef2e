package listener

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchbay/patchbay/internal/events"
)

// Metrics are the listener's Prometheus metrics, served at GET /metrics of
// the control endpoint. They live in their own registry rather than the
// global one, so that two listeners in one process (tests, `patchbay dev`)
// do not collide and nothing a library registers globally leaks out.
//
// Every metric of the listener is declared in this file, one declare
// method per concern, each followed by the methods that record it.
//
// A nil *Metrics records nothing, so parts of the daemon can run without.
type Metrics struct {
	reg *prometheus.Registry

	// Runs (declareRuns).
	provisions     *prometheus.CounterVec
	runDuration    prometheus.Histogram
	lastSuccess    prometheus.Gauge
	renderDuration prometheus.Histogram
	tests          *prometheus.CounterVec
	restores       *prometheus.CounterVec
	refused        *prometheus.CounterVec

	// The queue (declareQueue).
	pending       prometheus.Gauge
	running       prometheus.Gauge
	paused        prometheus.Gauge
	coalesced     prometheus.Counter
	mu            sync.Mutex
	lastCoalesced uint64 // QueueState.Coalesced as last seen, to add deltas

	// Inputs: events and Consul (declareInputs).
	inputsRead    *prometheus.CounterVec
	malformed     prometheus.Counter
	eventsIgnored *prometheus.CounterVec
	statusWrites  prometheus.Counter
	rejected      *prometheus.CounterVec

	// Load balancers: lb.go and haproxy.go (declareLB).
	leftOut       prometheus.Gauge
	policyEvicted prometheus.Counter
	haproxy       *prometheus.CounterVec

	// Change tracking (declareChanges).
	changeApplied *prometheus.HistogramVec
}

// NewMetrics returns the listener's metrics with Go runtime and process
// metrics alongside.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.declareRuns()
	m.declareQueue()
	m.declareInputs()
	m.declareLB()
	m.declareChanges()
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

// counterVec returns a registered counter with labels, exported at 0 for
// each of the known label values given (one label), so that rate() and
// increase() see the first increment of each.
func (m *Metrics) counterVec(opts prometheus.CounterOpts, labels []string, known ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(opts, labels)
	for _, v := range known {
		c.WithLabelValues(v)
	}
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) declareRuns() {
	m.provisions = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_provisions_total",
		Help: "Provision runs finished, by result: ok (every service applied), failed (a template, reload or provision command failed), " +
			"skipped (a service had unresolved requirements), halted (its rollout group is halted; staged, not applied).",
	}, []string{"result"}, ResultOK, ResultFailed, ResultSkipped, ResultHalted)
	m.runDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "patchbay_listener_run_duration_seconds",
		Help: "Duration of whole provision runs: reading bindings, rendering, checks, reloads and provision commands.",
		// Runs range from a re-render with nothing to do to a
		// configuration-management run of several minutes.
		Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
	})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchbay_listener_last_success_timestamp_seconds",
		Help: "Unix time when a provision run last finished with result ok; 0 until one has. Alert on time() minus this to catch a node stuck failing.",
	})
	m.renderDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "patchbay_listener_render_duration_seconds",
		Help:    "Duration of rendering one template from the bindings, before its check and install.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1ms … 16s
	})
	m.reg.MustRegister(m.runDuration, m.lastSuccess, m.renderDuration)
	m.tests = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_tests_total",
		Help: "Declared tests (manifest tests:) run after an apply, by service and result (passed, failed). A failed test undoes the service's apply.",
	}, []string{"service", "result"}) // bounded: the node's hosted services
	m.restores = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_drift_restores_total",
		Help: "Rendered files restored after being edited or deleted by hand, by destination path. A rising count means something keeps changing the file.",
	}, []string{"path"}) // bounded: one value per template destination of this node
	m.refused = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_refused_total",
		Help: "Manifest commands (kind command), template files (kind source) and destinations (kind destination) that listener.yaml's allow refused, each time a run met them; they were not run, read or written.",
	}, []string{"kind"}, "command", "source")
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

// TestFinished records a declared test's result.
func (m *Metrics) TestFinished(service string, passed bool) {
	if m == nil {
		return
	}
	result := "failed"
	if passed {
		result = "passed"
	}
	m.tests.WithLabelValues(service, result).Inc()
}

// Restored records that the rendered file at path was put back after it
// drifted.
func (m *Metrics) Restored(path string) {
	if m == nil {
		return
	}
	m.restores.WithLabelValues(path).Inc()
}

// Refused records a command or template file refused by allow.
func (m *Metrics) Refused(kind string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(kind).Inc()
}

func (m *Metrics) declareQueue() {
	m.pending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchbay_listener_queue_pending",
		Help: "1 while a provision run is queued and waiting for the quiet window, the throttle or a resume; else 0.",
	})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchbay_listener_queue_running",
		Help: "1 while a provision run is in progress; else 0.",
	})
	m.paused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchbay_listener_queue_paused",
		Help: "1 while the listener is paused (patchbay pause): triggers are remembered, no run starts until patchbay resume; else 0.",
	})
	m.coalesced = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "patchbay_listener_triggers_coalesced_total",
		Help: "Triggers absorbed into an already queued provision run instead of causing a run of their own: the reload storms avoided.",
	})
	m.reg.MustRegister(m.pending, m.running, m.paused, m.coalesced)
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

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Why a bindings event woke no run.
const (
	ignoredOtherRegion     = "other-region"
	ignoredHeld            = "held"
	ignoredOtherFederation = "other-federation"
)

// Where a run's inputs came from.
const (
	sourceEvents      = "events"       // carried by NATS: no Consul request
	sourceAntiEntropy = "anti-entropy" // anti-entropy's read, which found the change
	sourceConsul      = "consul"       // the run's own read
)

func (m *Metrics) declareInputs() {
	m.inputsRead = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_inputs_read_total",
		Help: "Provision runs by where they read the bindings: events (carried by NATS, no Consul request), anti-entropy (its read found the change; the run read nothing more) or consul (start, a manifest change, an oversized binding, a resync).",
	}, []string{"source"}, sourceEvents, sourceAntiEntropy, sourceConsul)
	m.malformed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "patchbay_listener_events_malformed_total",
		Help: "NATS messages on patchbay's subjects that were not patchbay events and were ignored (logged at most every 10s).",
	})
	m.eventsIgnored = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_events_ignored_total",
		Help: "Bindings events that woke no run, by reason: other-region (a binding of a region the node does not use), held (a revision the node holds already), other-federation.",
	}, []string{"reason"}, ignoredOtherRegion, ignoredHeld, ignoredOtherFederation)
	m.statusWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "patchbay_listener_status_writes_total",
		Help: "Writes of the node's status to Consul: one when a run's outcome differs from the last one recorded, never one per run.",
	})
	m.reg.MustRegister(m.malformed, m.statusWrites)
	m.rejected = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_events_rejected_total",
		Help: "Bindings events dropped because listener.yaml's events keys are set and no trusted key signed them, by reason: unsigned, unknown-key, bad-signature (logged at most every 10s).",
	}, []string{"reason"}, rejectedUnsigned, rejectedUnknownKey, rejectedBadSignature)
}

// Why a bindings event was dropped unapplied.
const (
	rejectedUnsigned     = "unsigned"
	rejectedUnknownKey   = "unknown-key"
	rejectedBadSignature = "bad-signature"
)

// Rejected records a bindings event dropped for its signature: a
// rejected* constant.
func (m *Metrics) Rejected(reason string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// InputsRead records where a run read its bindings: a source* constant.
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

// EventIgnored records a bindings event that woke no run.
func (m *Metrics) EventIgnored(reason string) {
	if m == nil {
		return
	}
	m.eventsIgnored.WithLabelValues(reason).Inc()
}

// eventIgnored says why a bindings event woke no run: at debug level, as a
// node in one region sees every region's events of its services.
func (l *Listener) eventIgnored(e events.BindingsChanged, reason string) {
	l.metrics.EventIgnored(reason)
	l.log.Debug("bindings event ignored", "service", e.Service, "event_region", e.Region, "node_region", l.cfg.Load().Region, "revision", e.Revision, "reason", reason)
}

// StatusWritten records a write of the node's status to Consul.
func (m *Metrics) StatusWritten() {
	if m == nil {
		return
	}
	m.statusWrites.Inc()
}

func (m *Metrics) declareLB() {
	m.leftOut = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchbay_listener_upstreams_left_out",
		Help: "Upstreams the last provision run left out of load-balancer renders because their host names do not resolve; the other changes applied. See patchbay status.",
	})
	m.policyEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "patchbay_listener_policy_evictions_total",
		Help: "Renders of a file that would have kept its last good version but routed to a live provider policy no longer allows (made private, another federation, unpublished).",
	})
	m.reg.MustRegister(m.leftOut, m.policyEvicted)
	m.haproxy = m.counterVec(prometheus.CounterOpts{
		Name: "patchbay_listener_haproxy_runtime_total",
		Help: "Changed HAProxy configs by how they were applied: runtime (servers changed over the runtime API, no reload), reload (the structure changed), fallback (the runtime API failed; reloaded).",
	}, []string{"applied"}, "runtime", "reload", "fallback")
}

// LeftOut records how many upstreams the last run left out.
func (m *Metrics) LeftOut(n int) {
	if m != nil {
		m.leftOut.Set(float64(n))
	}
}

// PolicyEvicted records a render forced by policy over a last good file.
func (m *Metrics) PolicyEvicted() {
	if m != nil {
		m.policyEvicted.Inc()
	}
}

// HAProxyApplied records how a changed HAProxy config was applied.
func (m *Metrics) HAProxyApplied(how string) {
	if m != nil {
		m.haproxy.WithLabelValues(how).Inc()
	}
}

// Where a change's latency is measured from.
const (
	changeFromRegistry = "registry" // the resolver's write of the binding, from its event
	changeFromReceived = "received" // the node's receipt: no event carried a write time
)

func (m *Metrics) declareChanges() {
	m.changeApplied = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "patchbay_listener_change_applied_seconds",
		Help: "Time from a binding change to this node's files applying it, by start: registry (the resolver's write of the binding, from its event; across hosts, so clock skew adds to it) or received (the node read the change from Consul without an event).",
		// From a fast event path (tens of ms) to a paused or throttled
		// node catching up minutes later.
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"from"})
	for _, from := range []string{changeFromRegistry, changeFromReceived} {
		m.changeApplied.WithLabelValues(from)
	}
	m.reg.MustRegister(m.changeApplied)
}

// ChangeApplied observes a revision applied at done: from the resolver's
// write when its event said when, else from when the node received it.
func (m *Metrics) ChangeApplied(written, received, done time.Time) {
	if m == nil {
		return
	}
	from, start := changeFromRegistry, written
	if written.IsZero() {
		from, start = changeFromReceived, received
	}
	if start.IsZero() {
		return
	}
	m.changeApplied.WithLabelValues(from).Observe(max(done.Sub(start), 0).Seconds())
}

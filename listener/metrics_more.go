package listener

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchbay/patchbay/internal/events"
)

// moreMetrics are the metrics of declared tests and of events a node
// ignores.
type moreMetrics struct {
	tests         *prometheus.CounterVec
	eventsIgnored *prometheus.CounterVec
}

func newMoreMetrics(reg *prometheus.Registry) moreMetrics {
	m := moreMetrics{
		tests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_tests_total",
			Help: "Declared tests (manifest tests:) run after an apply, by service and result (passed, failed). A failed test undoes the service's apply.",
		}, []string{"service", "result"}), // bounded: the node's hosted services
		eventsIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_events_ignored_total",
			Help: "Bindings events that woke no run, by reason: other-region (a binding of a region the node does not use), held (a revision the node holds already), other-federation.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ignoredOtherRegion, ignoredHeld, ignoredOtherFederation} {
		m.eventsIgnored.WithLabelValues(r)
	}
	reg.MustRegister(m.tests, m.eventsIgnored)
	return m
}

// Why a bindings event woke no run.
const (
	ignoredOtherRegion     = "other-region"
	ignoredHeld            = "held"
	ignoredOtherFederation = "other-federation"
)

// TestFinished records a declared test's result.
func (m *Metrics) TestFinished(service string, passed bool) {
	if m == nil {
		return
	}
	result := "failed"
	if passed {
		result = "passed"
	}
	m.more.tests.WithLabelValues(service, result).Inc()
}

// EventIgnored records a bindings event that woke no run.
func (m *Metrics) EventIgnored(reason string) {
	if m == nil {
		return
	}
	m.more.eventsIgnored.WithLabelValues(reason).Inc()
}

// eventIgnored says why a bindings event woke no run: at debug level, as a
// node in one region sees every region's events of its services.
func (l *Listener) eventIgnored(e events.BindingsChanged, reason string) {
	l.metrics.EventIgnored(reason)
	l.log.Debug("bindings event ignored", "service", e.Service, "event_region", e.Region, "node_region", l.cfg.Load().Region, "revision", e.Revision, "reason", reason)
}

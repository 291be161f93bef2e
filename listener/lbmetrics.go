package listener

import "github.com/prometheus/client_golang/prometheus"

// lbMetrics are the load-balancer metrics of lb.go and haproxy.go.
type lbMetrics struct {
	leftOut       prometheus.Gauge
	policyEvicted prometheus.Counter
	runtime       *prometheus.CounterVec
}

func newLBMetrics(reg *prometheus.Registry) lbMetrics {
	m := lbMetrics{
		leftOut: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchbay_listener_upstreams_left_out",
			Help: "Upstreams the last provision run left out of load-balancer renders because their host names do not resolve; the other changes applied. See patchbay status.",
		}),
		policyEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchbay_listener_policy_evictions_total",
			Help: "Renders of a file that would have kept its last good version but routed to a live provider policy no longer allows (made private, another federation, unpublished).",
		}),
		runtime: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchbay_listener_haproxy_runtime_total",
			Help: "Changed HAProxy configs by how they were applied: runtime (servers changed over the runtime API, no reload), reload (the structure changed), fallback (the runtime API failed; reloaded).",
		}, []string{"applied"}),
	}
	for _, a := range []string{"runtime", "reload", "fallback"} {
		m.runtime.WithLabelValues(a)
	}
	reg.MustRegister(m.leftOut, m.policyEvicted, m.runtime)
	return m
}

// LeftOut records how many upstreams the last run left out.
func (m *Metrics) LeftOut(n int) {
	if m != nil {
		m.lb.leftOut.Set(float64(n))
	}
}

// PolicyEvicted records a render forced by policy over a last good file.
func (m *Metrics) PolicyEvicted() {
	if m != nil {
		m.lb.policyEvicted.Inc()
	}
}

// HAProxyApplied records how a changed HAProxy config was applied.
func (m *Metrics) HAProxyApplied(how string) {
	if m != nil {
		m.lb.runtime.WithLabelValues(how).Inc()
	}
}

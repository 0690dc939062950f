package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the control plane; all nil-safe through the methods.
type metrics struct {
	latency    prometheus.Histogram
	applies    *prometheus.CounterVec
	skipped    prometheus.Counter
	hostWrites *prometheus.CounterVec
	health     *prometheus.GaugeVec
	queueDepth prometheus.GaugeFunc
	drift      *prometheus.CounterVec
	brake      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, queueLen func() int) *metrics {
	m := &metrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "propagation_latency_seconds",
			Help:    "Time from a host object change being queued to its last member write.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "member_writes_total",
			Help: "Writes to member clusters by cluster and operation (apply, delete) and result.",
		}, []string{"cluster", "op", "result"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "member_writes_skipped_total",
			Help: "Member writes skipped because the rendered manifest hash was unchanged.",
		}),
		hostWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "host_writes_total",
			Help: "Writes to host objects by what was written (finalizer, annotations, status).",
		}, []string{"what"}),
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "cluster_condition",
			Help: "1 if the member cluster's condition (Ready, Reachable) is True, else 0.",
		}, []string{"cluster", "condition"}),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "queue_depth",
			Help: "Host objects waiting to be reconciled (queued, or parked until member caches load).",
		}, func() float64 { return float64(queueLen()) }),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "drift_corrections_total",
			Help: "Member copies changed outside keelson and applied again, by cluster.",
		}, []string{"cluster"}),
		brake: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "keelson", Subsystem: "federation", Name: "failover_brake",
			Help: "1 while the fleet brake holds evictions (more than half of the clusters not ready), as of the last failover decision.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.latency, m.applies, m.skipped, m.hostWrites, m.health, m.queueDepth, m.drift, m.brake)
	}
	return m
}

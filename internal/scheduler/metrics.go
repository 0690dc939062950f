package scheduler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus metrics.
type Metrics struct {
	Attempts        *prometheus.CounterVec
	AttemptDuration *prometheus.HistogramVec
	E2EDuration     *prometheus.HistogramVec
	BindDuration    prometheus.Histogram
	PendingPods     *prometheus.GaugeVec
	ClaimConflicts  prometheus.Counter
	BindConflicts   prometheus.Counter
	StolenPods      prometheus.Counter
	SharePlaced     prometheus.Counter
	Instances       prometheus.Gauge
	MemberChanges   prometheus.Counter
}

// NewMetrics registers the metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 20)
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "schedule_attempts_total",
			Help: "Scheduling attempts by result (scheduled, unschedulable, error) and profile.",
		}, []string{"result", "profile"}),
		AttemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "scheduling_attempt_duration_seconds",
			Help: "Duration of one scheduling cycle (snapshot, filter, score, assume), by result.", Buckets: buckets,
		}, []string{"result", "profile"}),
		E2EDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "pod_scheduling_duration_seconds",
			Help: "Time from a pod's first scheduling attempt to its successful binding, by attempts.", Buckets: buckets,
		}, []string{"attempts"}),
		BindDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "binding_duration_seconds",
			Help: "Duration of the binding cycle (permit wait, ledger claim, bind).", Buckets: buckets,
		}),
		PendingPods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "pending_pods",
			Help: "Pods waiting in each queue (active, backoff, unschedulable, gated).",
		}, []string{"queue"}),
		ClaimConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "claim_conflicts_total",
			Help: "Bindings abandoned because another instance's claim took the room first.",
		}),
		BindConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "bind_conflicts_total",
			Help: "Bindings refused because another instance bound the pod first.",
		}),
		StolenPods: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "stolen_pods_total",
			Help: "Pods another live instance owned that this idle instance took after multiInstance.stealAfter.",
		}),
		SharePlaced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "share_placements_total",
			Help: "Bindings placed in this instance's share of a node, without a ledger claim (multiInstance.shareFraction).",
		}),
		Instances: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "live_instances",
			Help: "Live scheduler instances sharing pending pods (membership Leases), this one included.",
		}),
		MemberChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keelson", Subsystem: "scheduler", Name: "membership_changes_total",
			Help: "Changes of the set of live instances seen by this one (each moves pending pods between instances).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Attempts, m.AttemptDuration, m.E2EDuration, m.BindDuration, m.PendingPods, m.ClaimConflicts,
			m.BindConflicts, m.StolenPods, m.SharePlaced, m.Instances, m.MemberChanges)
	}
	return m
}

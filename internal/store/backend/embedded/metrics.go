package embedded

import (
	"github.com/prometheus/client_golang/prometheus"
)

// engineMetrics are the embedded engine's Prometheus metrics: the durable
// write path (each group commit is one write and one fdatasync) and the
// log's shape.
type engineMetrics struct {
	sync    prometheus.Histogram
	batch   prometheus.Histogram
	derived []prometheus.Collector
}

func newEngineMetrics(e *Engine) *engineMetrics {
	const ns, sub = "keelson", "store_embedded"
	m := &engineMetrics{
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "commit_sync_duration_seconds",
			Help:    "Time each group commit spent writing the log and in fdatasync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "commit_batch_updates",
			Help:    "Update calls made durable by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
	}
	counter := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help},
			func() float64 { return f(e.Stats()) })
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help},
			func() float64 { return f(e.Stats()) })
	}
	m.derived = []prometheus.Collector{
		counter("commits_total", "Group commits written.", func(s Stats) float64 { return float64(s.Commits) }),
		counter("log_bytes_written_total", "Bytes appended to the log.", func(s Stats) float64 { return float64(s.BytesWritten) }),
		counter("failed_updates_total", "Update calls whose function returned an error.", func(s Stats) float64 { return float64(s.FailedUpdates) }),
		gauge("segments", "Log segment files.", func(s Stats) float64 { return float64(s.Segments) }),
		gauge("index_keys", "Keys in the in-memory index, including keys only in history.", func(s Stats) float64 { return float64(s.Keys) }),
		counter("checkpoints_total", "Index checkpoints written.", func(s Stats) float64 { return float64(s.Checkpoints) }),
		gauge("log_bytes_since_checkpoint", "Log bytes written since the last index checkpoint: what a restart after a crash replays.",
			func(s Stats) float64 { return float64(max(s.SinceCheckpoint, 0)) }),
	}
	return m
}

func (m *engineMetrics) observe(info CommitInfo) {
	m.sync.Observe(info.Sync.Seconds())
	m.batch.Observe(float64(info.Updates + info.Failed))
}

// Collectors returns the engine's Prometheus collectors; the store
// registers them next to its own.
func (e *Engine) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{e.metrics.sync, e.metrics.batch}, e.metrics.derived...)
}

package store

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// metrics is a Server's private Prometheus registry, so several Servers
// in one process (tests) do not collide.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	eventsSent    prometheus.Counter
	leasesExpired prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "keelson", Subsystem: "store", Name: "requests_total",
		Help: "etcd API requests by gRPC method and status code.",
	}, []string{"method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "keelson", Subsystem: "store", Name: "request_duration_seconds",
		Help:    "Latency of unary etcd API requests by gRPC method.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"method"})
	m.eventsSent = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keelson", Subsystem: "store", Name: "watch_events_sent_total",
		Help: "Watch events sent to clients.",
	})
	m.leasesExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "keelson", Subsystem: "store", Name: "leases_expired_total",
		Help: "Leases revoked by the expiry loop.",
	})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "keelson", Subsystem: "store", Name: name, Help: help}, f)
	}
	status := func() backend.Status {
		if s.be == nil {
			return backend.Status{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, _ := s.be.Status(ctx)
		return st
	}
	m.reg.MustRegister(
		m.requests, m.latency, m.eventsSent, m.leasesExpired,
		gauge("watchers", "Active watchers.", func() float64 {
			if s.hub == nil {
				return 0
			}
			return float64(s.hub.watchers.Load())
		}),
		gauge("watch_hub_revision", "Newest revision the watch hub has received.", func() float64 {
			if s.hub == nil {
				return 0
			}
			return float64(s.hub.revision())
		}),
		gauge("revision", "Current store revision.", func() float64 { return float64(status().Revision) }),
		gauge("compact_revision", "Revision history is compacted to.", func() float64 { return float64(status().CompactRevision) }),
		gauge("db_size_bytes", "Bytes the engine occupies on disk.", func() float64 { return float64(status().DBSize) }),
		gauge("db_size_in_use_bytes", "Bytes of live data.", func() float64 { return float64(status().DBSizeInUse) }),
		gauge("leases", "Leases granted (as of the last expiry check).", func() float64 {
			if s.lessor == nil {
				return 0
			}
			return float64(s.lessor.count.Load())
		}),
		newCacheCollector(s),
		engineCollector{s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// collectorSource is implemented by engines that export their own
// Prometheus metrics (the embedded engine's commit and fsync histograms).
type collectorSource interface {
	Collectors() []prometheus.Collector
}

// engineCollector forwards to the engine's collectors, found when scraped
// (the engine may sit behind the read cache). It describes nothing, which
// makes it an unchecked collector: the engine's metrics are not known when
// the registry is built.
type engineCollector struct{ s *Server }

func (engineCollector) Describe(chan<- *prometheus.Desc) {}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	be := c.s.be
	if c.s.cache != nil {
		be = c.s.cache.Backend()
	}
	if src, ok := be.(collectorSource); ok {
		for _, col := range src.Collectors() {
			col.Collect(ch)
		}
	}
}

// cacheCollector exports the read cache's counters (nothing when the
// cache is off).
type cacheCollector struct {
	s                                           *Server
	hits, misses, redis, evictions, bytes, keys *prometheus.Desc
}

func newCacheCollector(s *Server) *cacheCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("keelson_store_cache_"+name, help, labels, nil)
	}
	return &cacheCollector{
		s:         s,
		hits:      d("hits_total", "Ranges the read cache answered without reading the engine (beyond its read barrier)."),
		misses:    d("misses_total", "Ranges or views the read cache passed to the engine, by reason: behind (the change feed had not reached the current revision), history (revision older than the cached history), values (values not in memory nor Redis), off (cache off or barrier failed).", "reason"),
		redis:     d("redis_lookups_total", "Values looked up in the Redis tier, by result (hit, miss).", "result"),
		evictions: d("evictions_total", "Values evicted from memory."),
		bytes:     d("bytes", "Bytes the read cache accounts for, by part (total, values, history, max).", "part"),
		keys:      d("keys", "Keys in the read cache."),
	}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.redis, c.evictions, c.bytes, c.keys} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.cache == nil {
		return
	}
	st := c.s.cache.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(c.hits, st.Hits)
	counter(c.misses, st.MissBehind, "behind")
	counter(c.misses, st.MissHistory, "history")
	counter(c.misses, st.MissValues, "values")
	counter(c.misses, st.MissOff, "off")
	counter(c.redis, st.RedisHits, "hit")
	counter(c.redis, st.RedisMisses, "miss")
	counter(c.evictions, st.Evictions)
	gauge(c.bytes, st.Bytes, "total")
	gauge(c.bytes, st.ValueBytes, "values")
	gauge(c.bytes, st.HistoryBytes, "history")
	gauge(c.bytes, st.MaxBytes, "max")
	gauge(c.keys, st.Keys)
}

// shortMethod turns "/etcdserverpb.KV/Range" into "KV.Range".
func shortMethod(full string) string {
	full = strings.TrimPrefix(full, "/")
	full = strings.TrimPrefix(full, "etcdserverpb.")
	return strings.Replace(full, "/", ".", 1)
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := shortMethod(info.FullMethod)
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return resp, err
}

func (m *metrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	m.requests.WithLabelValues(shortMethod(info.FullMethod), status.Code(err).String()).Inc()
	return err
}

// httpHandler serves /metrics, /health (etcd's JSON), /readyz, /livez and
// /debug/pprof.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		err := s.healthy(r.Context())
		body := map[string]string{"health": "true", "reason": ""}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			body = map[string]string{"health": "false", "reason": err.Error()}
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	ok := func(w http.ResponseWriter, r *http.Request) {
		if err := s.healthy(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/livez", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// healthy checks that the backend answers a read.
func (s *Server) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.be.View(ctx, func(tx backend.ReadTx) error {
		_ = tx.Revision()
		return nil
	})
}

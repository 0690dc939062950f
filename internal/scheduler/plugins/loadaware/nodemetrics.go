package loadaware

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
)

// NodeMetricsPath is where metrics-server (or any metrics.k8s.io
// provider) serves NodeMetrics.
const NodeMetricsPath = "/apis/metrics.k8s.io/v1beta1/nodes"

// nodeMetricsList is the part of metrics.k8s.io/v1beta1 NodeMetricsList
// the plugin reads (decoded here to keep k8s.io/metrics out of the
// module).
type nodeMetricsList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Timestamp time.Time                    `json:"timestamp"`
		Usage     map[string]resource.Quantity `json:"usage"`
	} `json:"items"`
}

// metricsUsage is one node's usage from the metrics API.
type metricsUsage struct {
	cpu, mem int64
	measured time.Time
}

// FetchFunc returns node name → usage from the metrics API.
type FetchFunc func(ctx context.Context) (map[string]metricsUsage, error)

// clientFetcher lists NodeMetrics through the API server.
func clientFetcher(c kubernetes.Interface) FetchFunc {
	return func(ctx context.Context) (map[string]metricsUsage, error) {
		// JSON whatever the client's content type (parseNodeMetrics
		// decodes JSON).
		raw, err := c.Discovery().RESTClient().Get().AbsPath(NodeMetricsPath).SetHeader("Accept", "application/json").Do(ctx).Raw()
		if err != nil {
			return nil, fmt.Errorf("listing node metrics: %w", err)
		}
		return parseNodeMetrics(raw)
	}
}

func parseNodeMetrics(raw []byte) (map[string]metricsUsage, error) {
	var l nodeMetricsList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("decoding node metrics: %w", err)
	}
	out := make(map[string]metricsUsage, len(l.Items))
	for _, it := range l.Items {
		c, cok := it.Usage["cpu"]
		m, mok := it.Usage["memory"]
		if it.Metadata.Name == "" || !cok || !mok {
			continue
		}
		out[it.Metadata.Name] = metricsUsage{cpu: c.MilliValue(), mem: m.Value(), measured: it.Timestamp}
	}
	return out, nil
}

// metricsSource keeps the last NodeMetrics list and refreshes it in the
// background when a scheduling cycle finds it older than the interval (no
// goroutine outlives a refresh; with no pods to schedule nothing is
// fetched).
type metricsSource struct {
	fetch    FetchFunc
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	data     atomic.Pointer[map[string]metricsUsage]
	mu       sync.Mutex
	fetching bool
	last     time.Time // when the last refresh began
	lastErr  error
	wg       sync.WaitGroup
}

// get returns the node's usage from the last list, if any.
func (m *metricsSource) get(node string) (metricsUsage, bool) {
	d := m.data.Load()
	if d == nil {
		return metricsUsage{}, false
	}
	u, ok := (*d)[node]
	return u, ok
}

// maybeRefresh starts a refresh when the data is older than the interval
// and none is running.
func (m *metricsSource) maybeRefresh() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fetching || (!m.last.IsZero() && m.now().Sub(m.last) < m.interval) {
		return
	}
	m.fetching, m.last = true, m.now()
	m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
		defer cancel()
		d, err := m.fetch(ctx)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.fetching, m.lastErr = false, err
		if err == nil {
			m.data.Store(&d)
		}
	})
}

// wait blocks until a refresh in flight has finished (tests).
func (m *metricsSource) wait() { m.wg.Wait() }

package loadaware

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// TestNodeMetricsAPI serves metrics.k8s.io NodeMetrics from a test server
// through a real client: nodes with metrics are scored on them (over
// their annotations), a node without falls back to its annotations, and
// a list older than the interval is fetched again.
func TestNodeMetricsAPI(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var body atomic.Value
	set := func(busyCPU string) {
		raw, err := json.Marshal(map[string]any{
			"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
			"items": []map[string]any{
				{"metadata": map[string]any{"name": "a"}, "timestamp": now.Format(time.RFC3339), "window": "20s", "usage": map[string]string{"cpu": busyCPU, "memory": "9Gi"}},
				{"metadata": map[string]any{"name": "b"}, "timestamp": now.Format(time.RFC3339), "window": "20s", "usage": map[string]string{"cpu": "1", "memory": "1Gi"}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		body.Store(raw)
	}
	set("9")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != NodeMetricsPath {
			http.NotFound(w, r)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// Annotations say the opposite of the metrics for a and b; c has only
	// annotations.
	nodes := []*v1.Node{annotated("a", "1", "1Gi", ""), annotated("b", "9", "9Gi", ""), annotated("c", "5", "5Gi", "")}
	snap := st.Cluster(nodes, nil, nil)
	pl, err := New([]byte(`{"metricsAPI": true, "metricsIntervalSeconds": 30}`), &st.Handle{Snap: snap, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	p := pl.(*Plugin)
	clock := now
	p.SetClock(func() time.Time { return clock })
	pod := st.Pod("p").Req("cpu", "100m", "memory", "100Mi").Obj()

	// The first cycle starts the fetch and uses annotations.
	got := st.Score(t.Context(), t, p, pod, snap)
	if got["a"] <= got["b"] {
		t.Fatalf("before metrics arrive: scores %v, want annotations (a idle)", got)
	}
	p.metrics.wait()
	got = st.Score(t.Context(), t, p, pod, snap)
	if want := map[string]int64{"a": 9, "b": 89, "c": 49}; got["a"] != want["a"] || got["b"] != want["b"] || got["c"] != want["c"] {
		t.Fatalf("with metrics: scores %v, want %v", got, want)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d metrics requests within the interval, want 1", n)
	}
	set("1")
	clock = clock.Add(31 * time.Second)
	st.Score(t.Context(), t, p, pod, snap)
	p.metrics.wait()
	if got = st.Score(t.Context(), t, p, pod, snap); got["a"] != 49 {
		t.Fatalf("after the interval: score(a) = %d, want 49 (cpu 1 of 10 and memory 9Gi of 10Gi, fresh list)", got["a"])
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d metrics requests, want 2", n)
	}
}

func TestParseNodeMetricsSkipsIncomplete(t *testing.T) {
	m, err := parseNodeMetrics([]byte(`{"items":[{"metadata":{"name":"a"},"usage":{"cpu":"250m"}},{"metadata":{"name":"b"},"usage":{"cpu":"250m","memory":"1Mi"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["a"]; ok || m["b"].cpu != 250 || m["b"].mem != 1<<20 {
		t.Fatalf("parsed %+v", m)
	}
	if _, err := parseNodeMetrics([]byte(`not json`)); err == nil {
		t.Fatal("no error for a broken body")
	}
}

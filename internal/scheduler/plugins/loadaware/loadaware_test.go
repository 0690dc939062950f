package loadaware

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func annotated(name, cpu, mem, at string) *v1.Node {
	n := st.Node(name).Cap("cpu", "10", "memory", "10Gi", "pods", "110").Obj()
	n.Annotations = map[string]string{AnnotationCPUUsage: cpu, AnnotationMemoryUsage: mem}
	if at != "" {
		n.Annotations[AnnotationUsageTime] = at
	}
	return n
}

func TestScoreAndFilter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	recent, old := now.Add(-10*time.Second).Format(time.RFC3339), now.Add(-time.Hour).Format(time.RFC3339)
	for _, tc := range []struct {
		name       string
		args       string
		nodes      []*v1.Node
		existing   []*v1.Pod
		wantScore  map[string]int64
		wantFilter map[string]framework.Code
	}{
		{
			name:      "usage annotations rank nodes",
			nodes:     []*v1.Node{annotated("busy", "9", "9Gi", ""), annotated("idle", "1", "1Gi", "")},
			wantScore: map[string]int64{"busy": 9, "idle": 89},
		},
		{
			name:      "requests when no annotations",
			nodes:     []*v1.Node{st.Node("plain").Cap("cpu", "10", "memory", "10Gi", "pods", "110").Obj(), annotated("idle", "0", "0", "")},
			existing:  []*v1.Pod{st.Pod("e").Node("plain").Req("cpu", "5", "memory", "5Gi").Obj()},
			wantScore: map[string]int64{"plain": 49, "idle": 99},
		},
		{
			name:      "stale usage falls back to requests",
			args:      `{"maxAgeSeconds": 60}`,
			nodes:     []*v1.Node{annotated("stale", "9", "9Gi", old), annotated("fresh", "9", "9Gi", recent)},
			wantScore: map[string]int64{"stale": 99, "fresh": 9},
		},
		{
			name:       "threshold filters loaded nodes",
			args:       `{"thresholdPercent": 80}`,
			nodes:      []*v1.Node{annotated("busy", "9", "1Gi", ""), annotated("idle", "1", "1Gi", "")},
			wantFilter: map[string]framework.Code{"busy": framework.Unschedulable, "idle": framework.Success},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster(tc.nodes, tc.existing, nil)
			p := st.NewPlugin(t, New, tc.args, snap).(*Plugin)
			p.SetClock(func() time.Time { return now })
			pod := st.Pod("p").Req("cpu", "100m", "memory", "100Mi").Obj()
			if tc.wantScore != nil {
				got := st.Score(t.Context(), t, p, pod, snap)
				for n, w := range tc.wantScore {
					if got[n] != w {
						t.Errorf("score(%s) = %d, want %d", n, got[n], w)
					}
				}
			}
			if tc.wantFilter != nil {
				got := st.Codes(st.Filter(t.Context(), p, pod, snap))
				for n, w := range tc.wantFilter {
					if got[n] != w {
						t.Errorf("filter(%s) = %v, want %v", n, got[n], w)
					}
				}
			}
		})
	}
}

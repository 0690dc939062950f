package noderesources

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestPodRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		wantCPU int64
		wantMem int64
	}{
		{"one container", st.Pod("p").Req("cpu", "500m", "memory", "1Gi").Obj(), 500, 1 << 30},
		{"two containers add", st.Pod("p").Req("cpu", "500m").Container("cpu", "250m").Obj(), 750, 0},
		{"init larger than containers wins", st.Pod("p").Req("cpu", "500m").Init(false, "cpu", "2").Obj(), 2000, 0},
		{"init smaller is ignored", st.Pod("p").Req("cpu", "500m").Init(false, "cpu", "100m").Obj(), 500, 0},
		{"sidecar adds to containers", st.Pod("p").Req("cpu", "500m").Init(true, "cpu", "200m").Obj(), 700, 0},
		{"init after sidecar includes it", st.Pod("p").Req("cpu", "100m").Init(true, "cpu", "200m").Init(false, "cpu", "1").Obj(), 1200, 0},
		{"overhead", st.Pod("p").Req("cpu", "500m").Overhead("cpu", "100m", "memory", "64Mi").Obj(), 600, 64 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pi := framework.NewPodInfo(tc.pod)
			if pi.Requests.MilliCPU != tc.wantCPU || pi.Requests.Memory != tc.wantMem {
				t.Fatalf("requests = %dm cpu %d mem, want %dm %d", pi.Requests.MilliCPU, pi.Requests.Memory, tc.wantCPU, tc.wantMem)
			}
		})
	}
}

func TestFitFilter(t *testing.T) {
	node := st.Node("n").Cap("cpu", "4", "memory", "8Gi", "pods", "3", "example.com/gpu", "2").Obj()
	existing := []*v1.Pod{
		st.Pod("e1").Node("n").Req("cpu", "3", "memory", "2Gi").Obj(),
		st.Pod("e2").Node("n").Req("example.com/gpu", "1").Obj(),
	}
	for _, tc := range []struct {
		name    string
		args    string
		pod     *v1.Pod
		want    framework.Code
		reasons string
	}{
		{"fits", "", st.Pod("p").Req("cpu", "1", "memory", "6Gi").Obj(), framework.Success, ""},
		{"insufficient cpu", "", st.Pod("p").Req("cpu", "1500m").Obj(), framework.Unschedulable, "Insufficient cpu"},
		{"insufficient cpu and memory", "", st.Pod("p").Req("cpu", "2", "memory", "7Gi").Obj(), framework.Unschedulable, "Insufficient cpu, Insufficient memory"},
		{"larger than the node", "", st.Pod("p").Req("cpu", "5").Obj(), framework.UnschedulableAndUnresolvable, "Insufficient cpu"},
		{"extended fits", "", st.Pod("p").Req("example.com/gpu", "1").Obj(), framework.Success, ""},
		{"extended exhausted", "", st.Pod("p").Req("example.com/gpu", "2").Obj(), framework.Unschedulable, "Insufficient example.com/gpu"},
		{"extended missing on node", "", st.Pod("p").Req("example.com/fpga", "1").Obj(), framework.UnschedulableAndUnresolvable, "Insufficient example.com/fpga"},
		{"ignored resource", `{"ignoredResources":["example.com/fpga"]}`, st.Pod("p").Req("example.com/fpga", "1").Obj(), framework.Success, ""},
		{"ignored group", `{"ignoredResourceGroups":["example.com"]}`, st.Pod("p").Req("example.com/fpga", "1").Obj(), framework.Success, ""},
		{"init container counts", "", st.Pod("p").Req("cpu", "100m").Init(false, "cpu", "2").Obj(), framework.Unschedulable, "Insufficient cpu"},
		{"overhead counts", "", st.Pod("p").Req("cpu", "1").Overhead("cpu", "1").Obj(), framework.Unschedulable, "Insufficient cpu"},
		{"best effort fits", "", st.Pod("p").Obj(), framework.Success, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster([]*v1.Node{node}, existing, nil)
			got := st.Filter(t.Context(), st.NewPlugin(t, NewFit, tc.args, snap), tc.pod, snap)["n"]
			if got.Code() != tc.want || got.Message() != tc.reasons {
				t.Fatalf("Filter = %v, want %v %q", got, tc.want, tc.reasons)
			}
		})
	}
	t.Run("too many pods", func(t *testing.T) {
		full := append(existing, st.Pod("e3").Node("n").Obj())
		snap := st.Cluster([]*v1.Node{node}, full, nil)
		got := st.Filter(t.Context(), st.NewPlugin(t, NewFit, "", snap), st.Pod("p").Obj(), snap)["n"]
		if got.Code() != framework.Unschedulable || got.Message() != "Too many pods" {
			t.Fatalf("Filter = %v, want Unschedulable Too many pods", got)
		}
	})
}

func TestFitScore(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("empty").Cap("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
		st.Node("half").Cap("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
	}
	pods := []*v1.Pod{st.Pod("e").Node("half").Req("cpu", "2", "memory", "4Gi").Obj()}
	pod := st.Pod("p").Req("cpu", "1", "memory", "2Gi").Obj()
	for _, tc := range []struct {
		name string
		args string
		want map[string]int64
	}{
		// empty: 3/4 free of each → 75; half: 1/4 free → 25.
		{"least allocated", "", map[string]int64{"empty": 75, "half": 25}},
		{"most allocated", `{"scoringStrategy":{"type":"MostAllocated"}}`, map[string]int64{"empty": 25, "half": 75}},
		{"cpu only", `{"scoringStrategy":{"type":"MostAllocated","resources":[{"name":"cpu","weight":1}]}}`, map[string]int64{"empty": 25, "half": 75}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster(nodes, pods, nil)
			got := st.Score(t.Context(), t, st.NewPlugin(t, NewFit, tc.args, snap), pod, snap)
			for n, w := range tc.want {
				if got[n] != w {
					t.Errorf("score(%s) = %d, want %d", n, got[n], w)
				}
			}
		})
	}
	t.Run("bad strategy", func(t *testing.T) {
		if _, err := NewFit([]byte(`{"scoringStrategy":{"type":"Random"}}`), nil); err == nil {
			t.Fatal("accepted unknown strategy")
		}
	})
}

func TestBalancedScore(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("cpu-heavy").Cap("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
		st.Node("even").Cap("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
	}
	pods := []*v1.Pod{
		st.Pod("e1").Node("cpu-heavy").Req("cpu", "3").Obj(),
		st.Pod("e2").Node("even").Req("cpu", "1", "memory", "2Gi").Obj(),
	}
	snap := st.Cluster(nodes, pods, nil)
	pod := st.Pod("p").Req("cpu", "1", "memory", "2Gi").Obj()
	got := st.Score(t.Context(), t, st.NewPlugin(t, NewBalanced, "", snap), pod, snap)
	// cpu-heavy: cpu 4/4=1, mem 2/8=.25 → std .375 → 62; even: .5/.5 → 100.
	if got["cpu-heavy"] != 62 || got["even"] != 100 {
		t.Fatalf("scores = %v, want cpu-heavy 62, even 100", got)
	}
	if got := st.Score(t.Context(), t, st.NewPlugin(t, NewBalanced, "", snap), st.Pod("q").Obj(), snap); len(got) != 0 {
		t.Fatalf("best-effort pod should skip, got %v", got)
	}
}

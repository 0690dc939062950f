package tainttoleration

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		node       *v1.Node
		pod        *v1.Pod
		want       framework.Code
		wantReason string
	}{
		{"no taints", st.Node("n").Obj(), st.Pod("p").Obj(), framework.Success, ""},
		{"untolerated NoSchedule", st.Node("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(), st.Pod("p").Obj(),
			framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {dedicated: gpu}"},
		{"untolerated NoExecute", st.Node("n").Taint("k", "v", v1.TaintEffectNoExecute).Obj(), st.Pod("p").Obj(), framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"},
		{"PreferNoSchedule never filters", st.Node("n").Taint("k", "v", v1.TaintEffectPreferNoSchedule).Obj(), st.Pod("p").Obj(), framework.Success, ""},
		{"tolerated by Equal", st.Node("n").Taint("k", "v", v1.TaintEffectNoSchedule).Obj(),
			st.Pod("p").Toleration("k", v1.TolerationOpEqual, "v", v1.TaintEffectNoSchedule).Obj(), framework.Success, ""},
		{"wrong value", st.Node("n").Taint("k", "v", v1.TaintEffectNoSchedule).Obj(),
			st.Pod("p").Toleration("k", v1.TolerationOpEqual, "w", v1.TaintEffectNoSchedule).Obj(), framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {k: v}"},
		{"Exists with empty effect tolerates all effects", st.Node("n").Taint("k", "v", v1.TaintEffectNoExecute).Obj(),
			st.Pod("p").Toleration("k", v1.TolerationOpExists, "", "").Obj(), framework.Success, ""},
		{"one of two tolerated", st.Node("n").Taint("a", "1", v1.TaintEffectNoSchedule).Taint("b", "2", v1.TaintEffectNoSchedule).Obj(),
			st.Pod("p").Toleration("a", v1.TolerationOpExists, "", "").Obj(), framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {b: 2}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster([]*v1.Node{tc.node}, nil, nil)
			got := st.Filter(t.Context(), &Plugin{}, tc.pod, snap)["n"]
			if got.Code() != tc.want || got.Message() != tc.wantReason {
				t.Fatalf("Filter = %v, want %v %q", got, tc.want, tc.wantReason)
			}
		})
	}
}

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("clean").Obj(),
		st.Node("one").Taint("a", "1", v1.TaintEffectPreferNoSchedule).Obj(),
		st.Node("two").Taint("a", "1", v1.TaintEffectPreferNoSchedule).Taint("b", "2", v1.TaintEffectPreferNoSchedule).Obj(),
	}
	snap := st.Cluster(nodes, nil, nil)
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want map[string]int64
	}{
		{"no tolerations", st.Pod("p").Obj(), map[string]int64{"clean": 100, "one": 50, "two": 0}},
		{"tolerates a", st.Pod("p").Toleration("a", v1.TolerationOpExists, "", v1.TaintEffectPreferNoSchedule).Obj(), map[string]int64{"clean": 100, "one": 100, "two": 0}},
		{"NoSchedule toleration does not count", st.Pod("p").Toleration("a", v1.TolerationOpExists, "", v1.TaintEffectNoSchedule).Obj(), map[string]int64{"clean": 100, "one": 50, "two": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := st.Score(t.Context(), t, &Plugin{}, tc.pod, snap)
			for n, want := range tc.want {
				if got[n] != want {
					t.Errorf("score(%s) = %d, want %d", n, got[n], want)
				}
			}
		})
	}
}

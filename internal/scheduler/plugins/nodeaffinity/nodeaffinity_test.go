package nodeaffinity

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func newPlugin(t *testing.T, args string) framework.Plugin {
	return st.NewPlugin(t, New, args, nil)
}

func TestFilter(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("a").Label("zone", "z1").Label("disk", "ssd").Obj(),
		st.Node("b").Label("zone", "z2").Obj(),
		st.Node("c").Obj(),
	}
	snap := st.Cluster(nodes, nil, nil)
	U := framework.UnschedulableAndUnresolvable
	S := framework.Success
	for _, tc := range []struct {
		name string
		args string
		pod  *v1.Pod
		want map[string]framework.Code
	}{
		{"nothing required", "", st.Pod("p").Obj(), map[string]framework.Code{"a": S, "b": S, "c": S}},
		{"nodeSelector", "", st.Pod("p").NodeSelector("zone", "z1").Obj(), map[string]framework.Code{"a": S, "b": U, "c": U}},
		{"required In", "", st.Pod("p").RequiredNodeAffinity("zone", v1.NodeSelectorOpIn, "z1", "z2").Obj(), map[string]framework.Code{"a": S, "b": S, "c": U}},
		{"required NotIn matches missing label", "", st.Pod("p").RequiredNodeAffinity("zone", v1.NodeSelectorOpNotIn, "z1").Obj(), map[string]framework.Code{"a": U, "b": S, "c": S}},
		{"required DoesNotExist", "", st.Pod("p").RequiredNodeAffinity("zone", v1.NodeSelectorOpDoesNotExist).Obj(), map[string]framework.Code{"a": U, "b": U, "c": S}},
		{"terms are ORed", "", st.Pod("p").RequiredNodeAffinity("disk", v1.NodeSelectorOpExists).RequiredNodeAffinity("zone", v1.NodeSelectorOpIn, "z2").Obj(), map[string]framework.Code{"a": S, "b": S, "c": U}},
		{"selector and affinity are ANDed", "", st.Pod("p").NodeSelector("zone", "z2").RequiredNodeAffinity("disk", v1.NodeSelectorOpExists).Obj(), map[string]framework.Code{"a": U, "b": U, "c": U}},
		{"added affinity", `{"addedAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"zone","operator":"Exists"}]}]}}}`,
			st.Pod("p").Obj(), map[string]framework.Code{"a": S, "b": S, "c": U}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := st.Codes(st.Filter(t.Context(), newPlugin(t, tc.args), tc.pod, snap))
			for n, want := range tc.want {
				if got[n] != want {
					t.Errorf("node %s: %v, want %v", n, got[n], want)
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("a").Label("zone", "z1").Label("disk", "ssd").Obj(),
		st.Node("b").Label("zone", "z2").Obj(),
		st.Node("c").Obj(),
	}
	snap := st.Cluster(nodes, nil, nil)
	pod := st.Pod("p").PreferredNodeAffinity(2, "zone", v1.NodeSelectorOpIn, "z1", "z2").PreferredNodeAffinity(6, "disk", v1.NodeSelectorOpIn, "ssd").Obj()
	got := st.Score(t.Context(), t, newPlugin(t, ""), pod, snap)
	want := map[string]int64{"a": 100, "b": 25, "c": 0}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("score(%s) = %d, want %d", n, got[n], w)
		}
	}
	if got := st.Score(t.Context(), t, newPlugin(t, ""), st.Pod("q").Obj(), snap); len(got) != 0 {
		t.Errorf("pod without preferences should skip scoring, got %v", got)
	}
}

func TestBadArgs(t *testing.T) {
	if _, err := New([]byte(`{"unknown":1}`), nil); err == nil {
		t.Fatal("unknown field accepted")
	}
}

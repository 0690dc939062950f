package validate

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

const zone = "topology.kubernetes.io/zone"

func TestCheck(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("a").Cap("cpu", "2", "memory", "4Gi", "pods", "3").Label(zone, "z1").Obj(),
		st.Node("b").Cap("cpu", "2", "memory", "4Gi", "pods", "3").Label(zone, "z2").Taint("k", "v", v1.TaintEffectNoSchedule).Obj(),
	}
	for _, tc := range []struct {
		name     string
		pods     []*v1.Pod
		wantKind string // "" for a valid placement
	}{
		{"valid", []*v1.Pod{st.Pod("p1").Node("a").Req("cpu", "1").Obj(), st.Pod("p2").Node("a").Req("cpu", "1").Obj()}, ""},
		{"cpu overcommit", []*v1.Pod{st.Pod("p1").Node("a").Req("cpu", "1500m").Obj(), st.Pod("p2").Node("a").Req("cpu", "1").Obj()}, "resources"},
		{"too many pods", []*v1.Pod{st.Pod("p1").Node("a").Obj(), st.Pod("p2").Node("a").Obj(), st.Pod("p3").Node("a").Obj(), st.Pod("p4").Node("a").Obj()}, "resources"},
		{"port clash", []*v1.Pod{st.Pod("p1").Node("a").HostPort("TCP", "", 80).Obj(), st.Pod("p2").Node("a").HostPort("TCP", "", 80).Obj()}, "ports"},
		{"untolerated taint", []*v1.Pod{st.Pod("p1").Node("b").Obj()}, "taints"},
		{"node selector", []*v1.Pod{st.Pod("p1").Node("a").NodeSelector(zone, "z2").Obj()}, "nodeaffinity"},
		{"missing node", []*v1.Pod{st.Pod("p1").Node("zz").Obj()}, "nodename"},
		{"anti-affinity", []*v1.Pod{st.Pod("p1").Node("a").Label("app", "x").Obj(), st.Pod("p2").Node("a").PodAntiAffinity(st.Term(zone, "app", "x")).Obj()}, "podantiaffinity"},
		{"affinity unmet", []*v1.Pod{st.Pod("p1").Node("a").Obj(), st.Pod("p2").Node("a").PodAffinity(st.Term(zone, "app", "db")).Obj()}, "podaffinity"},
		{"affinity met", []*v1.Pod{st.Pod("db").Node("a").Label("app", "db").Obj(), st.Pod("p2").Node("a").PodAffinity(st.Term(zone, "app", "db")).Obj()}, ""},
		{"spread broken", []*v1.Pod{
			st.Pod("w1").Node("a").Label("app", "w").Spread(1, zone, v1.DoNotSchedule, "app", "w").Obj(),
			st.Pod("w2").Node("a").Label("app", "w").Spread(1, zone, v1.DoNotSchedule, "app", "w").Obj(),
		}, "topologyspread"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(nodes, tc.pods, nil)
			if tc.wantKind == "" {
				if len(got) != 0 {
					t.Fatalf("violations on a valid placement: %v", got)
				}
				return
			}
			for _, v := range got {
				if v.Kind == tc.wantKind {
					return
				}
			}
			t.Fatalf("violations %v, want one of kind %s", got, tc.wantKind)
		})
	}
}

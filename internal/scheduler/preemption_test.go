package scheduler

import (
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestPreemption(t *testing.T) {
	pdbFor := func(app string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "pdb-" + app, Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
			Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
		}
	}
	never := v1.PreemptNever
	for _, tc := range []struct {
		name        string
		existing    []*v1.Pod // on 4-CPU nodes a and b
		pdbs        []runtime.Object
		pod         *v1.Pod
		wantVictims []string
		wantNode    string
	}{
		{
			name: "fewest victims",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "2").Obj(), st.Pod("a2").Node("a").Priority(1).Req("cpu", "2").Obj(),
				st.Pod("b1").Node("b").Priority(1).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "lowest priority",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(5).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(2).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "only what is needed; keep the higher priority",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "2").Obj(), st.Pod("a2").Node("a").Priority(3).Req("cpu", "2").Obj(),
				st.Pod("b1").Node("b").Priority(20).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "2").Obj(), wantVictims: []string{"a1"}, wantNode: "a",
		},
		{
			name: "PDB respected when another node works",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Label("app", "db").Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(2).Label("app", "web").Req("cpu", "4").Obj(),
			},
			pdbs: []runtime.Object{pdbFor("db", 0)},
			pod:  st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "higher priority pods are never victims",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(10).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(10).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(),
		},
		{
			name: "preemptionPolicy Never",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(1).Req("cpu", "4").Obj(),
			},
			pod: func() *v1.Pod {
				p := st.Pod("p").Priority(10).Req("cpu", "3").Obj()
				p.Spec.PreemptionPolicy = &never
				return p
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]runtime.Object{tc.pod}, tc.pdbs...)
			for _, p := range tc.existing {
				objs = append(objs, p)
			}
			client, b := newFakeClient(t, objs...)
			s := newTestScheduler(t, testConfig(), Options{Client: client})
			s.OnNodeAdd(st.Node("a").Obj())
			s.OnNodeAdd(st.Node("b").Obj())
			for _, p := range tc.existing {
				s.OnPodAdd(p)
			}
			s.OnPodAdd(tc.pod)
			drain(t, s)
			if len(b.snapshot()) != 0 {
				t.Fatalf("bound %v before victims were gone", b.snapshot())
			}
			var deleted []string
			nominated := ""
			for _, a := range client.Actions() {
				switch a := a.(type) {
				case clienttesting.DeleteAction:
					if a.GetResource().Resource == "pods" {
						deleted = append(deleted, a.GetName())
					}
				case clienttesting.PatchAction:
					if a.GetSubresource() == "status" && a.GetName() == tc.pod.Name && string(a.GetPatch()) == `{"status":{"nominatedNodeName":"`+tc.wantNode+`"}}` {
						nominated = tc.wantNode
					}
				}
			}
			sort.Strings(deleted)
			if len(deleted) != len(tc.wantVictims) || (len(deleted) > 0 && deleted[0] != tc.wantVictims[0]) {
				t.Fatalf("deleted %v, want %v", deleted, tc.wantVictims)
			}
			if tc.wantNode != "" && nominated != tc.wantNode {
				t.Errorf("nominatedNodeName not set to %s", tc.wantNode)
			}
		})
	}
}

package podtopologyspread

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

const zone = "topology.kubernetes.io/zone"

// a, b in z1; c in z2; d in z3 (tainted); e without zone.
func nodes() []*v1.Node {
	return []*v1.Node{
		st.Node("a").Label(zone, "z1").Obj(),
		st.Node("b").Label(zone, "z1").Obj(),
		st.Node("c").Label(zone, "z2").Label("pool", "x").Obj(),
		st.Node("d").Label(zone, "z3").Taint("k", "v", v1.TaintEffectNoSchedule).Obj(),
		st.Node("e").Obj(),
	}
}

func web(name, node string) *v1.Pod { return st.Pod(name).Node(node).Label("app", "web").Obj() }

func TestFilter(t *testing.T) {
	honor := v1.NodeInclusionPolicyHonor
	ignore := v1.NodeInclusionPolicyIgnore
	two := int32(2)
	five := int32(5)
	for _, tc := range []struct {
		name     string
		existing []*v1.Pod
		pod      *v1.Pod
		want     string // a b c d e: S ok, K skew, M missing label
	}{
		{"balanced zones allow all", nil, st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "SSSSM"},
		{"z1 has two, others none", []*v1.Pod{web("w1", "a"), web("w2", "b")},
			st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "KKSSM"},
		{"maxSkew 2 allows z1 at two above", []*v1.Pod{web("w1", "a")},
			st.Pod("p").Label("app", "web").Spread(2, zone, v1.DoNotSchedule, "app", "web").Obj(), "SSSSM"},
		{"pod not matching its own selector", []*v1.Pod{web("w1", "a"), web("w2", "c"), web("w3", "d")},
			st.Pod("p").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "SSSSM"},
		{"other namespaces do not count", []*v1.Pod{st.Pod("x").Namespace("other").Node("a").Label("app", "web").Obj()},
			st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "SSSSM"},
		{"nodeAffinityPolicy Honor drops other zones from the minimum", []*v1.Pod{web("w1", "a")},
			st.Pod("p").Label("app", "web").NodeSelector(zone, "z1").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "SSSSM"},
		{"nodeAffinityPolicy Ignore counts them", []*v1.Pod{web("w1", "a")},
			func() *v1.Pod {
				p := st.Pod("p").Label("app", "web").NodeSelector(zone, "z1").Spread(1, zone, v1.DoNotSchedule, "app", "web")
				p.LastSpread().NodeAffinityPolicy = &ignore
				return p.Obj()
			}(), "KKSSM"},
		{"nodeTaintsPolicy Honor drops the tainted zone", []*v1.Pod{web("w1", "a"), web("w2", "c")},
			func() *v1.Pod {
				p := st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web")
				p.LastSpread().NodeTaintsPolicy = &honor
				return p.Obj()
			}(), "SSSSM"},
		{"nodeTaintsPolicy Ignore keeps it (min 0)", []*v1.Pod{web("w1", "a"), web("w2", "c")},
			st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web").Obj(), "KKKSM"},
		{"minDomains above the domain count forces min 0", []*v1.Pod{web("w1", "a"), web("w2", "c"), web("w3", "d")},
			func() *v1.Pod {
				p := st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web")
				p.LastSpread().MinDomains = &five
				return p.Obj()
			}(), "KKKKM"},
		{"minDomains satisfied", []*v1.Pod{web("w1", "a"), web("w2", "c"), web("w3", "d")},
			func() *v1.Pod {
				p := st.Pod("p").Label("app", "web").Spread(1, zone, v1.DoNotSchedule, "app", "web")
				p.LastSpread().MinDomains = &two
				return p.Obj()
			}(), "SSSSM"},
		{"soft constraints do not filter", []*v1.Pod{web("w1", "a"), web("w2", "b")},
			st.Pod("p").Label("app", "web").Spread(1, zone, v1.ScheduleAnyway, "app", "web").Obj(), "SSSSS"},
		{"hostname spread", []*v1.Pod{web("w1", "a")},
			st.Pod("p").Label("app", "web").Spread(1, v1.LabelHostname, v1.DoNotSchedule, "app", "web").Obj(), "KSSSS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster(nodes(), tc.existing, nil)
			got := st.Filter(t.Context(), st.NewPlugin(t, New, "", snap), tc.pod, snap)
			codes := map[byte]framework.Code{'S': framework.Success, 'K': framework.Unschedulable, 'M': framework.UnschedulableAndUnresolvable}
			for i, n := range []string{"a", "b", "c", "d", "e"} {
				if got[n].Code() != codes[tc.want[i]] {
					t.Errorf("node %s: %v, want %v", n, got[n], codes[tc.want[i]])
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	snap := st.Cluster(nodes(), []*v1.Pod{web("w1", "a"), web("w2", "b"), web("w3", "c")}, nil)
	pod := st.Pod("p").Label("app", "web").Spread(1, zone, v1.ScheduleAnyway, "app", "web").Obj()
	got := st.Score(t.Context(), t, st.NewPlugin(t, New, "", snap), pod, snap)
	if !(got["d"] > got["c"] && got["c"] > got["a"] && got["a"] == got["b"] && got["e"] == 0) {
		t.Fatalf("scores = %v, want d > c > a = b and e = 0", got)
	}
	if got["d"] != 100 {
		t.Fatalf("emptiest domain scored %d, want 100", got["d"])
	}
}

// informerHandle adds an informer factory to the test handle.
type informerHandle struct {
	*st.Handle
	f informers.SharedInformerFactory
}

func (h informerHandle) SharedInformerFactory() informers.SharedInformerFactory { return h.f }

func TestSystemDefaultSpreadsReplicaSetPods(t *testing.T) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default"},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	client := fake.NewClientset(rs)
	f := informers.NewSharedInformerFactory(client, 0)
	owned := func(name, node string) *v1.Pod {
		p := st.Pod(name).Label("app", "web").Obj()
		p.Spec.NodeName = node
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}}
		return p
	}
	// Identical nodes without zones; a already holds two replicas, b one.
	var ns []*v1.Node
	for _, n := range []string{"a", "b", "c"} {
		ns = append(ns, st.Node(n).Label(v1.LabelHostname, n).Obj())
	}
	snap := st.Cluster(ns, []*v1.Pod{owned("w1", "a"), owned("w2", "a"), owned("w3", "b")}, nil)
	p, err := New(nil, informerHandle{Handle: &st.Handle{Snap: snap}, f: f})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(t.Context().Done())
	for typ, ok := range f.WaitForCacheSync(t.Context().Done()) {
		if !ok {
			t.Fatalf("%v did not sync", typ)
		}
	}
	got := st.Score(t.Context(), t, p, owned("new", ""), snap)
	if !(got["c"] > got["b"] && got["b"] > got["a"]) {
		t.Fatalf("scores = %v, want c > b > a (fewest replicas first)", got)
	}
	// A pod without a workload gets no default constraints.
	if got := st.Score(t.Context(), t, p, st.Pod("lone").Label("app", "web").Obj(), snap); got["a"] != got["c"] {
		t.Fatalf("scores for a pod without workload = %v, want all equal", got)
	}
	// Its own constraints replace the defaults; List without constraints
	// disables them.
	if _, err := New([]byte(`{"defaultingType":"List"}`), informerHandle{Handle: &st.Handle{Snap: snap}, f: f}); err != nil {
		t.Fatal(err)
	}
	if _, err := New([]byte(`{"defaultingType":"Other"}`), &st.Handle{Snap: snap}); err == nil {
		t.Fatal("unknown defaultingType accepted")
	}
}

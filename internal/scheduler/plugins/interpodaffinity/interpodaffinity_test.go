package interpodaffinity

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

const (
	zone = "topology.kubernetes.io/zone"
	host = v1.LabelHostname
)

// a, b in z1; c in z2; d has no zone.
func nodes() []*v1.Node {
	return []*v1.Node{
		st.Node("a").Label(zone, "z1").Obj(),
		st.Node("b").Label(zone, "z1").Obj(),
		st.Node("c").Label(zone, "z2").Obj(),
		st.Node("d").Obj(),
	}
}

func TestFilter(t *testing.T) {
	S, U, UU := framework.Success, framework.Unschedulable, framework.UnschedulableAndUnresolvable
	teamX := map[string]labels.Set{"other": {"team": "x"}, "default": {"team": "y"}}
	nsSel := st.Term(zone, "app", "db")
	nsSel.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "x"}}
	allNS := st.Term(zone, "app", "db")
	allNS.NamespaceSelector = &metav1.LabelSelector{}
	for _, tc := range []struct {
		name     string
		existing []*v1.Pod
		pod      *v1.Pod
		want     string // codes for a, b, c, d
	}{
		{"no terms", []*v1.Pod{st.Pod("e").Node("a").Label("app", "db").Obj()}, st.Pod("p").Obj(), "SSSS"},
		{"affinity to a zone with a match", []*v1.Pod{st.Pod("e").Node("a").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(st.Term(zone, "app", "db")).Obj(), "SSXY"},
		{"affinity to a host", []*v1.Pod{st.Pod("e").Node("b").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(st.Term(host, "app", "db")).Obj(), "XSXX"},
		{"affinity with no matching pod anywhere", nil,
			st.Pod("p").PodAffinity(st.Term(zone, "app", "db")).Obj(), "XXXY"},
		{"first pod of a self-affine group", nil,
			st.Pod("p").Label("app", "db").PodAffinity(st.Term(zone, "app", "db")).Obj(), "SSSY"},
		{"affinity needs one pod matching all terms", []*v1.Pod{st.Pod("e1").Node("a").Label("app", "db").Obj(), st.Pod("e2").Node("a").Label("tier", "cache").Obj()},
			st.Pod("p").PodAffinity(st.Term(zone, "app", "db")).PodAffinity(st.Term(zone, "tier", "cache")).Obj(), "XXXY"},
		{"anti-affinity per host", []*v1.Pod{st.Pod("e").Node("a").Label("app", "web").Obj()},
			st.Pod("p").PodAntiAffinity(st.Term(host, "app", "web")).Obj(), "ZSSS"},
		{"anti-affinity per zone; node without zone passes", []*v1.Pod{st.Pod("e").Node("a").Label("app", "web").Obj()},
			st.Pod("p").PodAntiAffinity(st.Term(zone, "app", "web")).Obj(), "ZZSS"},
		{"existing pod's anti-affinity", []*v1.Pod{st.Pod("e").Node("c").PodAntiAffinity(st.Term(zone, "app", "web")).Obj()},
			st.Pod("p").Label("app", "web").Obj(), "SSZS"},
		{"existing anti-affinity does not select", []*v1.Pod{st.Pod("e").Node("c").PodAntiAffinity(st.Term(zone, "app", "web")).Obj()},
			st.Pod("p").Label("app", "api").Obj(), "SSSS"},
		{"other namespace does not match by default", []*v1.Pod{st.Pod("e").Namespace("other").Node("a").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(st.Term(zone, "app", "db")).Obj(), "XXXY"},
		{"namespaces list", []*v1.Pod{st.Pod("e").Namespace("other").Node("a").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(st.Term(zone, "app", "db", "other")).Obj(), "SSXY"},
		{"namespaceSelector", []*v1.Pod{st.Pod("e").Namespace("other").Node("c").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(nsSel).Obj(), "XXSY"},
		{"empty namespaceSelector means all", []*v1.Pod{st.Pod("e").Namespace("other").Node("c").Label("app", "db").Obj()},
			st.Pod("p").PodAffinity(allNS).Obj(), "XXSY"},
		{"existing anti-affinity with namespaceSelector", []*v1.Pod{st.Pod("e").Namespace("other").Node("a").PodAntiAffinity(func() v1.PodAffinityTerm {
			t := st.Term(host, "app", "web")
			t.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "y"}}
			return t
		}()).Obj()}, st.Pod("p").Label("app", "web").Obj(), "ZSSS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster(nodes(), tc.existing, teamX)
			got := st.Filter(t.Context(), st.NewPlugin(t, New, "", snap), tc.pod, snap)
			if s, ok := got[""]; ok {
				t.Fatalf("PreFilter rejected: %v", s)
			}
			codes := map[byte]framework.Code{'S': S, 'X': UU, 'Y': UU, 'Z': U}
			reasons := map[byte]string{'X': ReasonAffinity, 'Y': ReasonAffinity}
			for i, n := range []string{"a", "b", "c", "d"} {
				w := tc.want[i]
				if got[n].Code() != codes[w] {
					t.Errorf("node %s: %v, want %v", n, got[n], codes[w])
				}
				if r, ok := reasons[w]; ok && got[n].Message() != r {
					t.Errorf("node %s: reason %q, want %q", n, got[n].Message(), r)
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []*v1.Pod
		pod      *v1.Pod
		want     map[string]int64
	}{
		{"preferred affinity to zone", []*v1.Pod{st.Pod("e").Node("a").Label("app", "db").Obj()},
			st.Pod("p").PreferredPodAffinity(10, st.Term(zone, "app", "db")).Obj(), map[string]int64{"a": 100, "b": 100, "c": 0, "d": 0}},
		{"preferred anti-affinity to host", []*v1.Pod{st.Pod("e").Node("a").Label("app", "web").Obj()},
			st.Pod("p").PreferredPodAntiAffinity(10, st.Term(host, "app", "web")).Obj(), map[string]int64{"a": 0, "b": 100, "c": 100, "d": 100}},
		{"existing pod prefers the incoming one", []*v1.Pod{st.Pod("e").Node("c").PreferredPodAffinity(5, st.Term(zone, "app", "web")).Obj()},
			st.Pod("p").Label("app", "web").Obj(), map[string]int64{"a": 0, "b": 0, "c": 100, "d": 0}},
		{"existing pod's required affinity counts", []*v1.Pod{st.Pod("e").Node("b").PodAffinity(st.Term(host, "app", "web")).Obj()},
			st.Pod("p").Label("app", "web").Obj(), map[string]int64{"a": 0, "b": 100, "c": 0, "d": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster(nodes(), tc.existing, nil)
			got := st.Score(t.Context(), t, st.NewPlugin(t, New, "", snap), tc.pod, snap)
			for n, w := range tc.want {
				if got[n] != w {
					t.Errorf("score(%s) = %d, want %d (all %v)", n, got[n], w, got)
				}
			}
		})
	}
}

// BenchmarkPreFilterAntiAffinity measures one scheduling cycle's affinity
// work at 5,000 nodes with 10 pods each.
func BenchmarkPreFilterAntiAffinity(b *testing.B) {
	var ns []*v1.Node
	var pods []*v1.Pod
	for i := range 5000 {
		n := fmt.Sprintf("n%d", i)
		ns = append(ns, st.Node(n).Label(zone, fmt.Sprintf("z%d", i%10)).Obj())
		for j := range 10 {
			pods = append(pods, st.Pod(fmt.Sprintf("p%d-%d", i, j)).Node(n).Label("app", fmt.Sprintf("a%d", j)).PodAntiAffinity(st.Term(host, "app", "x")).Obj())
		}
	}
	snap := st.Cluster(ns, pods, nil)
	p := st.NewPlugin(b, New, "", snap).(*Plugin)
	pod := framework.NewPodInfo(st.Pod("new").Label("app", "a1").PodAntiAffinity(st.Term(host, "app", "a1")).Obj())
	for b.Loop() {
		state := framework.NewCycleState()
		if _, s := p.PreFilter(b.Context(), state, pod); !s.IsSuccess() {
			b.Fatal(s)
		}
		for _, n := range snap.NodeInfos {
			p.Filter(b.Context(), state, pod, n)
		}
	}
}

// TestFilterPositionsAgreeWithLookups checks that the per-position
// anti-affinity verdicts and the per-domain counts PreFilter and PreScore
// precompute give what the per-node lookups give (a NodeInfo the snapshot
// does not list takes that path), for Filter and Score, also after a node
// moves to another zone.
func TestFilterPositionsAgreeWithLookups(t *testing.T) {
	existing := []*v1.Pod{
		st.Pod("e1").Node("a").Label("app", "web").Obj(),
		st.Pod("e2").Node("c").PodAntiAffinity(st.Term(zone, "app", "api")).Obj(),
		st.Pod("e3").Node("b").Label("app", "web").PreferredPodAffinity(5, st.Term(zone, "app", "api")).Obj(),
		st.Pod("e4").Node("c").Label("app", "db").PodAffinity(st.Term(zone, "app", "api")).Obj(),
	}
	pods := []*v1.Pod{
		st.Pod("p1").PodAntiAffinity(st.Term(zone, "app", "web")).Obj(),
		st.Pod("p2").Label("app", "api").Obj(),
		st.Pod("p3").Label("app", "api").PodAntiAffinity(st.Term(host, "app", "web")).Obj(),
		// Required affinity: the per-domain counts.
		st.Pod("p4").PodAffinity(st.Term(zone, "app", "web")).Obj(),
		st.Pod("p5").Label("app", "api").PodAffinity(st.Term(zone, "app", "web")).PodAntiAffinity(st.Term(host, "app", "web")).Obj(),
		st.Pod("p6").Label("app", "new").PodAffinity(st.Term(zone, "app", "new")).Obj(),
		st.Pod("p7").Label("app", "web").PodAffinity(st.Term(zone, "app", "web")).PodAffinity(st.Term(host, "app", "web")).Obj(),
		st.Pod("p8").PodAffinity(st.Term(host, "app", "db")).PreferredPodAntiAffinity(3, st.Term(zone, "app", "web")).Obj(),
	}
	check := func(snap *framework.Snapshot) {
		t.Helper()
		pl := st.NewPlugin(t, New, "", snap).(*Plugin)
		for _, p := range pods {
			pi := framework.NewPodInfo(p)
			state := framework.NewCycleState()
			if _, s := pl.PreFilter(t.Context(), state, pi); !s.IsSuccess() {
				t.Fatalf("PreFilter %s: %v", p.Name, s)
			}
			for _, ni := range snap.NodeInfos {
				if _, ok := snap.Position(ni); !ok {
					t.Fatalf("node %s has no position", ni.Name())
				}
				outside := framework.NewNodeInfo(ni.Pods...)
				outside.SetNode(ni.Node())
				if _, ok := snap.Position(outside); ok {
					t.Fatalf("a NodeInfo outside the snapshot has a position")
				}
				fast, slow := pl.Filter(t.Context(), state, pi, ni), pl.Filter(t.Context(), state, pi, outside)
				if fast.Code() != slow.Code() || fast.Message() != slow.Message() {
					t.Errorf("pod %s node %s: %v by position, %v by lookup", p.Name, ni.Name(), fast, slow)
				}
			}
			if s := pl.PreScore(t.Context(), state, pi, snap.NodeInfos); s.IsSkip() {
				continue
			} else if !s.IsSuccess() {
				t.Fatalf("PreScore %s: %v", p.Name, s)
			}
			for _, ni := range snap.NodeInfos {
				outside := framework.NewNodeInfo(ni.Pods...)
				outside.SetNode(ni.Node())
				fast, s1 := pl.Score(t.Context(), state, pi, ni)
				slow, s2 := pl.Score(t.Context(), state, pi, outside)
				if !s1.IsSuccess() || !s2.IsSuccess() || fast != slow {
					t.Errorf("pod %s node %s: score %d (%v) by position, %d (%v) by lookup", p.Name, ni.Name(), fast, s1, slow, s2)
				}
			}
		}
	}
	snap := st.Cluster(nodes(), existing, nil)
	check(snap)
	// Node b moves from z1 to z2: the domain lists are rebuilt.
	b, _ := snap.Get("b")
	moved := b.Clone()
	moved.SetNode(st.Node("b").Label(zone, "z2").Obj())
	if !snap.Replace([]*framework.NodeInfo{moved}) {
		t.Fatal("Replace refused")
	}
	if got := snap.NodesInDomain(zone, "z2"); len(got) != 2 {
		t.Fatalf("z2 holds positions %v, want two nodes", got)
	}
	check(snap)
}

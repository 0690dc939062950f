package framework

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

func indexTestNode(name, zone string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name, "zone": zone}}}
}

func indexTestPod(r *rand.Rand, i int) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("p%d", i), UID: types.UID(fmt.Sprintf("u%d", i)),
		Namespace: []string{"a", "b"}[r.IntN(2)],
		Labels:    map[string]string{"app": fmt.Sprintf("x%d", r.IntN(4))},
	}}
	if r.IntN(2) == 0 {
		p.Labels["tier"] = []string{"web", "db"}[r.IntN(2)]
	}
	if r.IntN(3) == 0 {
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("x%d", r.IntN(4))}},
				TopologyKey:   []string{"zone", v1.LabelHostname}[r.IntN(2)],
			}},
		}}
	}
	return p
}

// TestIndexMatchesScan changes a snapshot at random through Replace and
// Reset and checks the indexes against counting every pod.
func TestIndexMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes := map[string]*NodeInfo{}
	for i := range 8 {
		ni := NewNodeInfo()
		ni.SetNode(indexTestNode(fmt.Sprintf("n%d", i), fmt.Sprintf("z%d", i%3)))
		nodes[ni.Name()] = ni
	}
	list := func() []*NodeInfo {
		var out []*NodeInfo
		for i := range 8 {
			if n, ok := nodes[fmt.Sprintf("n%d", i)]; ok {
				out = append(out, n)
			}
		}
		return out
	}
	snap := NewSnapshot(list(), map[string]labels.Set{"a": {"team": "t"}})
	selectors := []string{"app=x1", "app in (x0,x2)", "app=x3,tier=web", "tier", "app!=x1", ""}
	next := 0
	for step := range 400 {
		name := fmt.Sprintf("n%d", r.IntN(8))
		cl := nodes[name].Clone()
		switch op := r.IntN(10); {
		case op < 5:
			cl.AddPodInfo(NewPodInfo(indexTestPod(r, next)))
			next++
		case op < 8 && len(cl.Pods) > 0:
			cl.RemovePod(cl.Pods[r.IntN(len(cl.Pods))].UID())
		default:
			n := cl.Node().DeepCopy()
			n.Labels["zone"] = fmt.Sprintf("z%d", r.IntN(3))
			cl.SetNode(n)
		}
		nodes[name] = cl
		if step%7 == 0 {
			snap.Reset(list())
		} else if !snap.Replace([]*NodeInfo{cl}) {
			t.Fatal("Replace refused a known node")
		}
		for _, sel := range selectors {
			s, err := labels.Parse(sel)
			if err != nil {
				t.Fatal(err)
			}
			q := PodQuery{Namespaces: map[string]struct{}{"a": {}}, Selector: s}
			got := map[string]int{}
			snap.CountMatching(q, func(ni *NodeInfo, n int) { got[ni.Name()] += n })
			want := map[string]int{}
			wantZone := map[string]int32{}
			for _, ni := range snap.NodeInfos {
				for _, p := range ni.Pods {
					if p.Pod.Namespace == "a" && s.Matches(labels.Set(p.Pod.Labels)) {
						want[ni.Name()]++
						wantZone[ni.Node().Labels["zone"]]++
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("step %d, %q: CountMatching %v, scan %v", step, sel, got, want)
			}
			if maps, ok := snap.DomainSources(q, "zone"); ok {
				sum := map[string]int32{}
				for _, m := range maps {
					for k, v := range m {
						sum[k] += v
					}
				}
				if fmt.Sprint(sum) != fmt.Sprint(wantZone) {
					t.Fatalf("step %d, %q: DomainSources %v, scan %v", step, sel, sum, wantZone)
				}
			}
		}
		// Existing anti-affinity terms selecting a probe pod.
		probe := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Labels: map[string]string{"app": "x1"}}}
		got := map[string]int32{}
		snap.TermsSelecting(probe, func(g *TermGroup) {
			for d, n := range g.Domains {
				got[g.Term.TopologyKey+"="+d] += n
			}
		})
		want := map[string]int32{}
		for _, ni := range snap.NodeInfos {
			for _, p := range ni.Pods {
				for _, term := range p.RequiredAntiAffinityTerms {
					if term.Matches(probe, nil) {
						want[term.TopologyKey+"="+ni.Node().Labels[term.TopologyKey]]++
					}
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("step %d: TermsSelecting %v, scan %v", step, got, want)
		}
	}
}

package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// fullEvaluation filters and scores every node the plain way (no kept
// results): the reference for nodeResults.
func fullEvaluation(t *testing.T, s *Scheduler, fw *framework.Framework, pod *framework.PodInfo) (codes map[string]framework.Code, totals map[string]int64) {
	t.Helper()
	ctx := t.Context()
	state := framework.NewCycleState()
	if _, st := fw.RunPreFilterPlugins(ctx, state, pod); !st.IsSuccess() {
		t.Fatalf("prefilter: %v", st)
	}
	codes = map[string]framework.Code{}
	var feasible []*framework.NodeInfo
	for _, ni := range s.snapshot.NodeInfos {
		st := fw.RunFilterPlugins(ctx, state, pod, ni)
		codes[ni.Name()] = st.Code()
		if st.IsSuccess() {
			feasible = append(feasible, ni)
		}
	}
	totals = map[string]int64{}
	if len(feasible) == 0 {
		return codes, totals
	}
	if st := fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
		t.Fatalf("prescore: %v", st)
	}
	scores, st := fw.RunScorePlugins(ctx, state, pod, feasible)
	if !st.IsSuccess() {
		t.Fatalf("score: %v", st)
	}
	for _, sc := range scores {
		totals[sc.Name] = sc.Score
	}
	return codes, totals
}

// keptEvaluation runs the same through nodeResults, as schedulePod does.
// sameEvaluation fails the test unless the kept path's verdicts and
// totals for pod i equal the full pass's.
func sameEvaluation(t *testing.T, i int, codes map[string]framework.Code, totals map[string]int64, wantCodes map[string]framework.Code, wantTotals map[string]int64) {
	t.Helper()
	for n, c := range wantCodes {
		if codes[n] != c {
			t.Fatalf("pod %d node %s: kept verdict %v, full %v", i, n, codes[n], c)
		}
	}
	if len(totals) != len(wantTotals) {
		t.Fatalf("pod %d: %d nodes scored, want %d", i, len(totals), len(wantTotals))
	}
	for n, v := range wantTotals {
		if totals[n] != v {
			t.Fatalf("pod %d node %s: kept total %d, full %d", i, n, totals[n], v)
		}
	}
}

func keptEvaluation(t *testing.T, s *Scheduler, fw *framework.Framework, pod *framework.PodInfo) (codes map[string]framework.Code, totals map[string]int64, reused int) {
	t.Helper()
	ctx := t.Context()
	state := framework.NewCycleState()
	if _, st := fw.RunPreFilterPlugins(ctx, state, pod); !st.IsSuccess() {
		t.Fatalf("prefilter: %v", st)
	}
	hasFilters := fw.HasFilters(state)
	if !fw.NodeLocal(state, false) {
		t.Fatal("filters are not node-local")
	}
	s.results.prepare(fw, s.snapshot, pod)
	statuses, err := s.results.filter(ctx, s.par, s.snapshot, state, pod, hasFilters)
	if err != nil {
		t.Fatal(err)
	}
	reused = len(statuses) - len(s.results.changed)
	codes = map[string]framework.Code{}
	var feasible []*framework.NodeInfo
	var positions []int32
	for i, st := range statuses {
		codes[s.snapshot.NodeInfos[i].Name()] = st.Code()
		if st.IsSuccess() {
			feasible = append(feasible, s.snapshot.NodeInfos[i])
			positions = append(positions, int32(i))
		}
	}
	totals = map[string]int64{}
	if len(feasible) == 0 {
		return codes, totals, reused
	}
	if st := fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
		t.Fatalf("prescore: %v", st)
	}
	scores, st, ok := s.results.score(ctx, s.par, state, pod, feasible, positions)
	if !ok {
		t.Fatal("score plugins are not node-local")
	}
	if !st.IsSuccess() {
		t.Fatalf("score: %v", st)
	}
	for _, sc := range scores {
		totals[sc.Name] = sc.Score
	}
	return codes, totals, reused
}

// TestKeptResultsMatchFullEvaluation schedules a run of equal pods while
// the cluster changes between cycles (pods assumed and removed, nodes
// cordoned, tainted, relabelled) and checks that the verdicts and totals
// kept from earlier cycles equal a full evaluation's, and that unchanged
// nodes were indeed not evaluated again.
func TestKeptResultsMatchFullEvaluation(t *testing.T) {
	s := newTestScheduler(t, testConfig(), Options{})
	fw := s.profiles[DefaultSchedulerName]
	const nodes = 40
	node := func(i int) *st.NodeWrapper {
		return st.Node(fmt.Sprintf("n%d", i)).Cap("cpu", fmt.Sprint(2+i%5), "memory", fmt.Sprintf("%dGi", 4+i%7), "pods", "20").Label("disk", []string{"ssd", "hdd"}[i%2])
	}
	for i := range nodes {
		s.cache.AddNode(node(i).Obj())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	spec := func(i int) *v1.Pod {
		return st.Pod(fmt.Sprintf("p%d", i)).UID(fmt.Sprintf("p%d", i)).Req("cpu", "300m", "memory", "512Mi").
			Toleration("dedicated", v1.TolerationOpEqual, "batch", v1.TaintEffectNoSchedule).
			PreferredNodeAffinity(10, "disk", v1.NodeSelectorOpIn, "ssd").Obj()
	}
	totalReused := 0
	for i := range 60 {
		s.cache.UpdateSnapshot(s.snapshot)
		fw.SetSnapshot(s.snapshot)
		pod := framework.NewPodInfo(spec(i))
		codes, totals, reused := keptEvaluation(t, s, fw, pod)
		wantCodes, wantTotals := fullEvaluation(t, s, fw, pod)
		sameEvaluation(t, i, codes, totals, wantCodes, wantTotals)
		if i > 0 {
			totalReused += reused
		}
		// Place the pod on its best node, as the cycle would.
		best, bestScore := "", int64(-1)
		for n, v := range totals {
			if v > bestScore || (v == bestScore && n < best) {
				best, bestScore = n, v
			}
		}
		if best != "" {
			p := spec(i)
			p.Spec.NodeName = best
			s.cache.AddPod(p)
		}
		// And change the cluster.
		switch k := rng.IntN(nodes); i % 5 {
		case 1:
			s.cache.AddNode(node(k).Unschedulable().Obj())
		case 2:
			s.cache.AddNode(node(k).Taint("dedicated", "web", v1.TaintEffectNoSchedule).Obj())
		case 3:
			s.cache.AddNode(node(k).Label("disk", "ssd").Taint("soft", "x", v1.TaintEffectPreferNoSchedule).Obj())
		case 4:
			if i >= 5 {
				s.cache.RemovePod(&v1.Pod{ObjectMeta: spec(i - 5).ObjectMeta, Spec: v1.PodSpec{NodeName: "?"}})
				s.cache.ForgetPod(types.UID(fmt.Sprintf("p%d", i-5)))
			}
		}
	}
	// Most nodes are unchanged from one cycle to the next.
	if totalReused < 59*nodes/2 {
		t.Errorf("kept results used %d times over 59 cycles of %d nodes; expected most", totalReused, nodes)
	}
}

// TestKeptResultsDroppedForOtherSpec checks that a pod with another spec
// does not use the results kept for the previous one.
func TestKeptResultsDroppedForOtherSpec(t *testing.T) {
	s := newTestScheduler(t, testConfig(), Options{})
	fw := s.profiles[DefaultSchedulerName]
	s.cache.AddNode(st.Node("small").Cap("cpu", "1", "memory", "4Gi", "pods", "10").Obj())
	s.cache.AddNode(st.Node("big").Cap("cpu", "8", "memory", "4Gi", "pods", "10").Obj())
	s.cache.UpdateSnapshot(s.snapshot)
	fw.SetSnapshot(s.snapshot)
	codes, _, _ := keptEvaluation(t, s, fw, framework.NewPodInfo(st.Pod("a").Req("cpu", "500m").Obj()))
	if codes["small"] != framework.Success {
		t.Fatalf("small node rejected a 500m pod: %v", codes["small"])
	}
	codes, _, reused := keptEvaluation(t, s, fw, framework.NewPodInfo(st.Pod("b").Req("cpu", "2").Obj()))
	if reused != 0 {
		t.Errorf("%d verdicts reused for a pod of another size", reused)
	}
	if codes["small"] == framework.Success || codes["big"] != framework.Success {
		t.Errorf("2-CPU pod: small %v, big %v", codes["small"], codes["big"])
	}
}

// TestKeptResultsAntiAffinityPerHost schedules a run of pods with
// required and preferred anti-affinity per host while pods come and go
// (the run's own pods, pods whose own required anti-affinity per host
// selects the run, pods the preferred term counts), and checks that
// kept verdicts and totals equal a full evaluation's whenever the
// interpodaffinity plugin is node-local; and that it is not node-local
// while two nodes share a hostname label or an existing pod's term has a
// zone key.
func TestKeptResultsAntiAffinityPerHost(t *testing.T) {
	s := newTestScheduler(t, testConfig(), Options{})
	fw := s.profiles[DefaultSchedulerName]
	// More nodes than blockAfter: the full evaluation reads the plugin's
	// per-node verdict array, the kept one looks the few changed nodes up.
	const nodes = 40
	node := func(i int) *st.NodeWrapper {
		return st.Node(fmt.Sprintf("n%d", i)).Cap("cpu", "8", "memory", "16Gi", "pods", "20").Label(v1.LabelTopologyZone, fmt.Sprintf("z%d", i%3))
	}
	for i := range nodes {
		s.cache.AddNode(node(i).Obj())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	spec := func(i int) *v1.Pod {
		return st.Pod(fmt.Sprintf("p%d", i)).UID(fmt.Sprintf("p%d", i)).Req("cpu", "100m").Label("color", "green").
			PodAntiAffinity(st.Term(v1.LabelHostname, "color", "green")).
			PreferredPodAntiAffinity(10, st.Term(v1.LabelHostname, "tier", "cache")).Obj()
	}
	other := func(name, node string) *st.PodWrapper {
		return st.Pod(name).UID(name).Req("cpu", "100m").Node(node)
	}
	isLocal := func(pod *framework.PodInfo) bool {
		state := framework.NewCycleState()
		if _, st := fw.RunPreFilterPlugins(t.Context(), state, pod); !st.IsSuccess() {
			t.Fatalf("prefilter: %v", st)
		}
		fw.HasFilters(state)
		return fw.NodeLocal(state, false)
	}
	placed, local, totalReused := 0, 0, 0
	for i := range 80 {
		s.cache.UpdateSnapshot(s.snapshot)
		fw.SetSnapshot(s.snapshot)
		p := spec(i)
		if i%10 == 5 {
			// Another label: the existing pods' terms that repel the
			// run do not select this one, so kept verdicts do not apply.
			p.Labels["color"] = "blue"
		}
		pod := framework.NewPodInfo(p)
		wantCodes, wantTotals := fullEvaluation(t, s, fw, pod)
		shared := i%20 == 7   // two nodes share a hostname label this cycle
		zoneTerm := i%20 == 9 // an existing pod's term has a zone key
		if shared || zoneTerm {
			if isLocal(pod) {
				t.Fatalf("pod %d: node-local with shared hostname %v / zone term %v", i, shared, zoneTerm)
			}
		} else {
			local++
			codes, totals, reused := keptEvaluation(t, s, fw, pod)
			sameEvaluation(t, i, codes, totals, wantCodes, wantTotals)
			if i > 0 {
				totalReused += reused
			}
		}
		// Place the pod on its best feasible node, lowest name on ties.
		best, bestScore := "", int64(-1)
		for n, v := range wantTotals {
			if v > bestScore || (v == bestScore && n < best) {
				best, bestScore = n, v
			}
		}
		if best == "" {
			for n, c := range wantCodes {
				if c == framework.Success && (best == "" || n < best) {
					best = n
				}
			}
		}
		if best != "" {
			p = p.DeepCopy()
			p.Spec.NodeName = best
			s.cache.AddPod(p)
			placed++
		}
		// Change the cluster.
		k := rng.IntN(nodes)
		name := fmt.Sprintf("x%d", i)
		switch i % 20 {
		case 6: // shared hostname label for the next cycle
			s.cache.AddNode(node(k).Label(v1.LabelHostname, fmt.Sprintf("n%d", (k+1)%nodes)).Obj())
		case 7:
			s.cache.AddNode(node(k).Obj())
			for j := range nodes {
				s.cache.AddNode(node(j).Obj())
			}
		case 8: // an existing pod anti-affine per zone to the run
			s.cache.AddPod(other("zone", fmt.Sprintf("n%d", k)).PodAntiAffinity(st.Term(v1.LabelTopologyZone, "color", "green")).Obj())
		case 9:
			z := other("zone", "?").Obj()
			s.cache.RemovePod(z)
			s.cache.ForgetPod(z.UID)
		default:
			switch rng.IntN(4) {
			case 0: // keeps the run away from its node
				s.cache.AddPod(other(name, fmt.Sprintf("n%d", k)).PodAntiAffinity(st.Term(v1.LabelHostname, "color", "green")).Obj())
			case 1: // lowers the node's score
				s.cache.AddPod(other(name, fmt.Sprintf("n%d", k)).Label("tier", "cache").Obj())
			case 2: // one of the run leaves
				if i >= 3 {
					p := spec(rng.IntN(i))
					s.cache.RemovePod(&v1.Pod{ObjectMeta: p.ObjectMeta, Spec: v1.PodSpec{NodeName: "?"}})
					s.cache.ForgetPod(p.UID)
				}
			}
		}
	}
	if local < 60 || placed < 20 {
		t.Fatalf("%d node-local cycles, %d pods placed; the test does not exercise kept results", local, placed)
	}
	if totalReused < (local-1)*nodes/2 {
		t.Errorf("kept results used %d times over %d cycles of %d nodes; expected most", totalReused, local, nodes)
	}
}

package fragmentation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/fragmentation"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/noderesources"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// The model places the Saturation benchmark's workload (bench/scheduler:
// 100 nodes of 32 CPUs / 256 GiB / 110 pods, pods of eight shapes in
// arrival order until they ask for 1.25× the CPU) with real plugins, one
// pod after another as a scheduler with a backlog does, and compares
// profiles by pods bound and CPU and memory allocated.

type modelHandle struct {
	st.Handle
	counts map[[2]int64]int
}

func (h *modelHandle) PendingShapes(max int) []framework.PendingShape {
	var out []framework.PendingShape
	for k, n := range h.counts {
		if n > 0 {
			out = append(out, framework.PendingShape{MilliCPU: k[0], Memory: k[1], Count: n})
		}
	}
	slices.SortFunc(out, func(a, b framework.PendingShape) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.MilliCPU != b.MilliCPU {
			return int(a.MilliCPU - b.MilliCPU)
		}
		return int(a.Memory - b.Memory)
	})
	return out[:min(max, len(out))]
}

type weighted struct {
	p framework.ScorePlugin
	w int64
}

type outcome struct {
	bound            int
	cpuAlloc, memAlc float64
}

func saturationPods(seed uint64, nodes int) []*v1.Pod {
	shapes := [][2]string{{"500m", "1Gi"}, {"1", "12Gi"}, {"2", "4Gi"}, {"2", "24Gi"}, {"4", "16Gi"}, {"250m", "4Gi"}, {"3", "30Gi"}, {"6", "40Gi"}}
	rng := rand.New(rand.NewPCG(seed, 2))
	target := int64(nodes) * 32000 * 5 / 4
	var out []*v1.Pod
	for used := int64(0); used < target; {
		sh := shapes[rng.IntN(len(shapes))]
		name := fmt.Sprintf("sat-%05d", len(out))
		p := st.Pod(name).UID(name).Req("cpu", sh[0], "memory", sh[1]).Obj()
		used += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
		out = append(out, p)
	}
	return out
}

// place runs the workload through the score plugins profile builds.
func place(t *testing.T, seed uint64, profile func(h framework.Handle) []weighted) outcome {
	t.Helper()
	const nodes = 100
	ctx := context.Background()
	var infos []*framework.NodeInfo
	for i := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(st.Node(fmt.Sprintf("n%03d", i)).Cap("cpu", "32", "memory", "256Gi", "pods", "110").Obj())
		infos = append(infos, ni)
	}
	pods := saturationPods(seed, nodes)
	h := &modelHandle{Handle: st.Handle{Snap: framework.NewSnapshot(infos, nil)}, counts: map[[2]int64]int{}}
	pis := make([]*framework.PodInfo, len(pods))
	for i, p := range pods {
		pis[i] = framework.NewPodInfo(p)
		h.counts[[2]int64{pis[i].Requests.MilliCPU, pis[i].Requests.Memory}]++
	}
	plugins := profile(h)
	rng := rand.New(rand.NewPCG(seed, 7))
	var out outcome
	var cpu, mem int64
	for _, pi := range pis {
		var feasible []*framework.NodeInfo
		for _, ni := range infos {
			if len(noderesources.Fits(pi, &ni.Allocatable, &ni.Requested, len(ni.Pods), nil)) == 0 {
				feasible = append(feasible, ni)
			}
		}
		if len(feasible) > 0 {
			total := make([]int64, len(feasible))
			state := framework.NewCycleState()
			for _, wp := range plugins {
				if ps, ok := wp.p.(framework.PreScorePlugin); ok {
					if s := ps.PreScore(ctx, state, pi, feasible); s.IsSkip() {
						continue
					} else if !s.IsSuccess() {
						t.Fatalf("PreScore: %v", s)
					}
				}
				scores := make([]framework.NodeScore, len(feasible))
				for i, ni := range feasible {
					v, s := wp.p.Score(ctx, state, pi, ni)
					if !s.IsSuccess() {
						t.Fatalf("Score: %v", s)
					}
					scores[i] = framework.NodeScore{Name: ni.Name(), Score: v}
				}
				if n, ok := wp.p.(framework.ScoreNormalizer); ok {
					n.NormalizeScore(ctx, state, pi, scores)
				}
				for i := range scores {
					total[i] += wp.w * scores[i].Score
				}
			}
			best, ties := -1, 0
			for i, v := range total {
				switch {
				case best < 0 || v > total[best]:
					best, ties = i, 1
				case v == total[best]:
					ties++
					if rng.IntN(ties) == 0 {
						best = i
					}
				}
			}
			feasible[best].AddPodInfo(pi)
			out.bound++
			cpu += pi.Requests.MilliCPU
			mem += pi.Requests.Memory
		}
		// Decided (bound, or left unschedulable and still pending).
		h.counts[[2]int64{pi.Requests.MilliCPU, pi.Requests.Memory}]--
	}
	out.cpuAlloc = float64(cpu) / float64(nodes*32000)
	out.memAlc = float64(mem) / float64(nodes*(256<<30))
	return out
}

func newScore(t *testing.T, f framework.Factory, args string, h framework.Handle) framework.ScorePlugin {
	t.Helper()
	var raw []byte
	if args != "" {
		raw = []byte(args)
	}
	p, err := f(raw, h)
	if err != nil {
		t.Fatal(err)
	}
	return p.(framework.ScorePlugin)
}

// TestSaturationModel: on the Saturation workload, the packing profile
// (fragmentation alone) binds more pods and allocates more CPU and memory
// than MostAllocated with balanced allocation (kube-scheduler's packing
// configuration) for every seed tried.
func TestSaturationModel(t *testing.T) {
	if testing.Short() {
		t.Skip("model run")
	}
	mostBalanced := func(h framework.Handle) []weighted {
		return []weighted{
			{newScore(t, noderesources.NewFit, `{"scoringStrategy":{"type":"MostAllocated"}}`, h), 1},
			{newScore(t, noderesources.NewBalanced, "", h), 1},
		}
	}
	frag := func(h framework.Handle) []weighted {
		return []weighted{{newScore(t, fragmentation.New, "", h), 1}}
	}
	for _, seed := range []uint64{4, 5, 6, 7} {
		base, got := place(t, seed, mostBalanced), place(t, seed, frag)
		t.Logf("seed %d: MostAllocated+balanced %d pods, CPU %.2f%%, memory %.2f%%; fragmentation %d pods, CPU %.2f%%, memory %.2f%%",
			seed, base.bound, 100*base.cpuAlloc, 100*base.memAlc, got.bound, 100*got.cpuAlloc, 100*got.memAlc)
		if got.bound <= base.bound || got.cpuAlloc <= base.cpuAlloc || got.memAlc <= base.memAlc {
			t.Errorf("seed %d: fragmentation (%+v) not better than MostAllocated+balanced (%+v) on every count", seed, got, base)
		}
	}
}

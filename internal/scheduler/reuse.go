package scheduler

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// nodeResults keeps one pod's Filter verdicts and raw Score values per
// node position of the snapshot, for the next pods with the same
// scheduling spec (the members of a gang, the replicas of a Deployment).
//
// It is used only when every Filter and Score plugin running for the pod
// is node-local (framework.NodeLocalPlugin): a node's verdict and raw
// score then depend only on the pod's spec and on the node's NodeInfo, so
// they stay valid while the node's generation does. Each cycle re-runs
// Filter and Score only on the nodes whose NodeInfo changed since (the
// node the previous pod was assumed on, nodes informers updated), then
// normalizes and combines the raw scores of every feasible node as a full
// evaluation would: the chosen node is the one a full evaluation would
// choose (ties aside, broken at random either way).
//
// Only the scheduling loop's goroutine uses it.
type nodeResults struct {
	fw     *framework.Framework
	pod    *framework.PodInfo
	layout int64
	valid  bool
	// labelsMatter: some existing pod had an affinity term while these
	// results were kept. Such terms select the incoming pod by its
	// labels (interpodaffinity), so the next pod must then have the same
	// labels too; without any, verdicts do not depend on labels.
	labelsMatter bool

	// Per position in the snapshot's NodeInfos.
	gens   []int64
	status []*framework.Status
	names  []string
	scored []bool
	// active are the Score plugins (framework indexes) raw holds values
	// for: raw[j][pos].
	active []int
	raw    [][]int64

	changed   []int32
	positions []int32
	names2    []string
	activeBuf []int
}

// equivalent reports whether a and b have the same spec for node-local
// plugins: requests, host ports, tolerations, node selection, and the
// fields that decide which plugins run (affinity, spreading, namespace,
// scheduler, priority).
func equivalent(a, b *framework.PodInfo) bool {
	if a == nil || b == nil {
		return false
	}
	pa, pb := &a.Pod.Spec, &b.Pod.Spec
	return a.Pod.Namespace == b.Pod.Namespace &&
		pa.SchedulerName == pb.SchedulerName &&
		pa.NodeName == pb.NodeName &&
		a.Requests.MilliCPU == b.Requests.MilliCPU && a.Requests.Memory == b.Requests.Memory &&
		a.Requests.EphemeralStorage == b.Requests.EphemeralStorage && maps.Equal(a.Requests.Scalar, b.Requests.Scalar) &&
		a.NonZeroCPU == b.NonZeroCPU && a.NonZeroMemory == b.NonZeroMemory &&
		slices.Equal(a.HostPorts, b.HostPorts) &&
		maps.Equal(pa.NodeSelector, pb.NodeSelector) &&
		equality.Semantic.DeepEqual(pa.Tolerations, pb.Tolerations) &&
		equality.Semantic.DeepEqual(pa.Affinity, pb.Affinity) &&
		equality.Semantic.DeepEqual(pa.TopologySpreadConstraints, pb.TopologySpreadConstraints) &&
		equality.Semantic.DeepEqual(pa.Priority, pb.Priority)
}

// prepare readies r for pod on snap's nodes: kept results stay when pod
// is equivalent to the last one and the node list has the same layout;
// otherwise every node is marked for evaluation.
func (r *nodeResults) prepare(fw *framework.Framework, snap *framework.Snapshot, pod *framework.PodInfo) {
	all := snap.NodeInfos
	terms := snap.HasTerms()
	if r.valid && r.fw == fw && r.layout == snap.Layout() && len(r.gens) == len(all) && equivalent(r.pod, pod) &&
		(!(r.labelsMatter || terms) || maps.Equal(r.pod.Pod.Labels, pod.Pod.Labels)) {
		r.pod = pod
		r.labelsMatter = r.labelsMatter || terms
		return
	}
	r.fw, r.pod, r.layout, r.valid, r.labelsMatter = fw, pod, snap.Layout(), true, terms
	n := len(all)
	r.gens = resize(r.gens, n)
	for i := range r.gens {
		r.gens[i] = -1
	}
	r.status = resize(r.status, n)
	clear(r.status)
	r.scored = resize(r.scored, n)
	clear(r.scored)
	r.names = resize(r.names, n)
	for i, ni := range all {
		r.names[i] = ni.Name()
	}
	r.active = r.active[:0]
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// filter brings the verdicts up to date (Filter on the nodes whose
// NodeInfo changed) and returns them, one per position.
func (r *nodeResults) filter(ctx context.Context, par framework.Parallelizer, snap *framework.Snapshot, state *framework.CycleState, pod *framework.PodInfo, hasFilters bool) ([]*framework.Status, error) {
	all, gens := snap.NodeInfos, snap.Generations()
	r.changed = r.changed[:0]
	for i, g := range gens {
		if r.gens[i] != g {
			r.changed = append(r.changed, int32(i))
		}
	}
	if hasFilters {
		par.Until(ctx, len(r.changed), func(k int) {
			i := r.changed[k]
			r.status[i] = r.fw.RunFilterPlugins(ctx, state, pod, all[i])
		})
	} else {
		for _, i := range r.changed {
			r.status[i] = nil
		}
	}
	if err := ctx.Err(); err != nil {
		r.valid = false
		return nil, err
	}
	for _, i := range r.changed {
		r.gens[i] = gens[i]
		r.scored[i] = false
	}
	return r.status, nil
}

// score returns the totals for feasible (given with their positions),
// scoring only the nodes without kept raw values. ok is false when a Score
// plugin that is not node-local runs for this pod: the caller then scores
// the usual way.
func (r *nodeResults) score(ctx context.Context, par framework.Parallelizer, state *framework.CycleState, pod *framework.PodInfo, feasible []*framework.NodeInfo, positions []int32) ([]framework.NodeScore, *framework.Status, bool) {
	fw := r.fw
	if !fw.NodeLocal(state, true) {
		return nil, nil, false
	}
	r.activeBuf = fw.ActiveScorePlugins(state, r.activeBuf[:0])
	if !slices.Equal(r.activeBuf, r.active) {
		r.active = append(r.active[:0], r.activeBuf...)
		clear(r.scored)
	}
	for len(r.raw) < len(r.active) {
		r.raw = append(r.raw, nil)
	}
	for j := range r.active {
		r.raw[j] = resize(r.raw[j], len(r.gens))
	}
	// Indexes into feasible of the nodes to score.
	r.changed = r.changed[:0]
	for k, pos := range positions {
		if !r.scored[pos] {
			r.changed = append(r.changed, int32(k))
		}
	}
	var failed atomic.Pointer[framework.Status]
	par.Until(ctx, len(r.changed), func(c int) {
		k := r.changed[c]
		if st := fw.ScoreNode(ctx, state, pod, feasible[k], r.active, r.raw, int(positions[k])); st != nil {
			failed.CompareAndSwap(nil, st)
		}
	})
	if st := failed.Load(); st != nil {
		clear(r.scored)
		return nil, st, true
	}
	if err := ctx.Err(); err != nil {
		clear(r.scored)
		return nil, framework.AsStatus(err), true
	}
	for _, k := range r.changed {
		r.scored[positions[k]] = true
	}
	r.names2 = r.names2[:0]
	for _, pos := range positions {
		r.names2 = append(r.names2, r.names[pos])
	}
	totals, st := fw.CombineScores(ctx, state, pod, r.names2, positions, r.active, r.raw)
	return totals, st, true
}

package schedtest

import (
	"context"
	"encoding/json"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Handle is a framework.Handle over a fixed snapshot.
type Handle struct {
	Snap    *framework.Snapshot
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Waiting, when set, serves GetWaitingPod and IterateOverWaitingPods.
	Waiting WaitingPods
}

// WaitingPods is the part of a framework a test handle may delegate to.
type WaitingPods interface {
	GetWaitingPod(uid types.UID) framework.WaitingPod
	IterateOverWaitingPods(fn func(framework.WaitingPod))
}

// DynamicClient implements framework.DynamicHandle.
func (h *Handle) DynamicClient() dynamic.Interface { return h.Dynamic }

// Snapshot implements framework.Handle.
func (h *Handle) Snapshot() *framework.Snapshot { return h.Snap }

// ClientSet implements framework.Handle.
func (h *Handle) ClientSet() kubernetes.Interface { return h.Client }

// Parallelizer implements framework.Handle.
func (h *Handle) Parallelizer() framework.Parallelizer { return framework.Parallelizer{Workers: 2} }

// GetWaitingPod implements framework.Handle.
func (h *Handle) GetWaitingPod(uid types.UID) framework.WaitingPod {
	if h.Waiting == nil {
		return nil
	}
	return h.Waiting.GetWaitingPod(uid)
}

// IterateOverWaitingPods implements framework.Handle.
func (h *Handle) IterateOverWaitingPods(fn func(framework.WaitingPod)) {
	if h.Waiting != nil {
		h.Waiting.IterateOverWaitingPods(fn)
	}
}

// Cluster builds a snapshot: each pod goes to the node named in its
// spec.nodeName.
func Cluster(nodes []*v1.Node, pods []*v1.Pod, namespaces map[string]labels.Set) *framework.Snapshot {
	infos := map[string]*framework.NodeInfo{}
	var list []*framework.NodeInfo
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		infos[n.Name] = ni
		list = append(list, ni)
	}
	for _, p := range pods {
		if ni, ok := infos[p.Spec.NodeName]; ok {
			ni.AddPodInfo(framework.NewPodInfo(p))
		}
	}
	return framework.NewSnapshot(list, namespaces)
}

// NewPlugin builds a plugin with args (JSON text, "" for none) over snap.
func NewPlugin(t testing.TB, f framework.Factory, args string, snap *framework.Snapshot) framework.Plugin {
	t.Helper()
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	p, err := f(raw, &Handle{Snap: snap})
	if err != nil {
		t.Fatalf("building plugin: %v", err)
	}
	return p
}

// Filter runs PreFilter (if any) and Filter (if any) of p for pod on every
// node of snap, returning each node's status keyed by name; a PreFilter
// rejection is returned under the key "".
func Filter(ctx context.Context, p framework.Plugin, pod *v1.Pod, snap *framework.Snapshot) map[string]*framework.Status {
	out := map[string]*framework.Status{}
	state := framework.NewCycleState()
	pi := framework.NewPodInfo(pod)
	if pf, ok := p.(framework.PreFilterPlugin); ok {
		res, s := pf.PreFilter(ctx, state, pi)
		if s.IsSkip() {
			for _, n := range snap.NodeInfos {
				out[n.Name()] = nil
			}
			return out
		}
		if !s.IsSuccess() {
			out[""] = s
			return out
		}
		if res != nil && res.NodeNames != nil {
			for _, n := range snap.NodeInfos {
				if _, ok := res.NodeNames[n.Name()]; !ok {
					out[n.Name()] = framework.NewStatus(framework.UnschedulableAndUnresolvable, "excluded by prefilter")
				}
			}
		}
	}
	f, ok := p.(framework.FilterPlugin)
	for _, n := range snap.NodeInfos {
		if _, done := out[n.Name()]; done {
			continue
		}
		if ok {
			out[n.Name()] = f.Filter(ctx, state, pi, n)
		} else {
			out[n.Name()] = nil
		}
	}
	return out
}

// Score runs PreScore, Score and NormalizeScore of p for pod over the
// nodes of snap (all assumed feasible) and returns the final scores by
// node name; a PreScore Skip gives an empty map.
func Score(ctx context.Context, t testing.TB, p framework.Plugin, pod *v1.Pod, snap *framework.Snapshot) map[string]int64 {
	t.Helper()
	state := framework.NewCycleState()
	pi := framework.NewPodInfo(pod)
	if pf, ok := p.(framework.PreFilterPlugin); ok {
		if _, s := pf.PreFilter(ctx, state, pi); !s.IsSuccess() && !s.IsSkip() {
			t.Fatalf("PreFilter: %v", s)
		}
	}
	if ps, ok := p.(framework.PreScorePlugin); ok {
		s := ps.PreScore(ctx, state, pi, snap.NodeInfos)
		if s.IsSkip() {
			return map[string]int64{}
		}
		if !s.IsSuccess() {
			t.Fatalf("PreScore: %v", s)
		}
	}
	sp := p.(framework.ScorePlugin)
	scores := make([]framework.NodeScore, len(snap.NodeInfos))
	for i, n := range snap.NodeInfos {
		v, s := sp.Score(ctx, state, pi, n)
		if !s.IsSuccess() {
			t.Fatalf("Score(%s): %v", n.Name(), s)
		}
		scores[i] = framework.NodeScore{Name: n.Name(), Score: v}
	}
	if norm, ok := p.(framework.ScoreNormalizer); ok {
		if s := norm.NormalizeScore(ctx, state, pi, scores); !s.IsSuccess() {
			t.Fatalf("NormalizeScore: %v", s)
		}
	}
	out := map[string]int64{}
	for _, s := range scores {
		out[s.Name] = s.Score
	}
	return out
}

// Codes reduces statuses to their codes, for compact expectations.
func Codes(m map[string]*framework.Status) map[string]framework.Code {
	out := map[string]framework.Code{}
	for k, s := range m {
		out[k] = s.Code()
	}
	return out
}

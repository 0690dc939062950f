package fragmentation

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "fragmentation"

func init() {
	framework.Register(framework.KindScore, Name, "prefer nodes where the pod leaves the least free room that pending pods cannot use", New)
}

// Args configure fragmentation.
type Args struct {
	// MaxShapes bounds the distinct pending request shapes considered
	// (the most common ones); default 32.
	MaxShapes int `json:"maxShapes,omitempty"`
}

// DefaultMaxShapes is MaxShapes when unset.
const DefaultMaxShapes = 32

// Plugin implements PreScore, Score and NormalizeScore.
type Plugin struct {
	h         framework.Handle
	maxShapes int
}

// New is the factory.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	args := Args{MaxShapes: DefaultMaxShapes}
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.MaxShapes < 1 || args.MaxShapes > 1024 {
		return nil, fmt.Errorf("maxShapes %d is outside 1..1024", args.MaxShapes)
	}
	return &Plugin{h: h, maxShapes: args.MaxShapes}, nil
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

const stateKey = Name

// preScoreState is the pending pods' shapes for this cycle.
type preScoreState struct {
	shapes []framework.PendingShape
	total  int
}

// Clone implements framework.StateData (read-only after PreScore).
func (s *preScoreState) Clone() framework.StateData { return s }

// PreScore reads the pending shapes; without any (or without a handle
// that knows them) the plugin has nothing to say and skips.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	ph, ok := p.h.(framework.PendingHandle)
	if !ok {
		return framework.NewStatus(framework.Skip)
	}
	shapes := ph.PendingShapes(p.maxShapes)
	s := &preScoreState{shapes: shapes}
	for _, sh := range shapes {
		s.total += sh.Count
	}
	if s.total == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(stateKey, s)
	return nil
}

// scale turns the change of a fragment (a fraction) into an integer raw
// score without losing the differences that matter.
const scale = 1_000_000

// Score is the fragment before the pod minus the fragment after it (raw,
// may be negative; NormalizeScore maps it to [0, 100]).
func (p *Plugin) Score(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*preScoreState](state, stateKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	alloc, used := &node.Allocatable, &node.Requested
	freeCPU, freeMem := alloc.MilliCPU-used.MilliCPU, alloc.Memory-used.Memory
	slots := alloc.AllowedPodNumber - int64(len(node.Pods))
	before := Fragment(s.shapes, s.total, freeCPU, freeMem, slots, alloc.MilliCPU, alloc.Memory)
	after := Fragment(s.shapes, s.total, freeCPU-pod.Requests.MilliCPU, freeMem-pod.Requests.Memory, slots-1, alloc.MilliCPU, alloc.Memory)
	return int64(math.Round((before - after) * scale)), nil
}

// Fragment is the share of pending pods (shapes, total of their counts)
// that do not fit in free room (milli-CPU, memory bytes, pod slots) times
// the larger of the free CPU and memory fractions of a node with
// allocatable allocCPU and allocMem.
func Fragment(shapes []framework.PendingShape, total int, freeCPU, freeMem, slots, allocCPU, allocMem int64) float64 {
	if total == 0 {
		return 0
	}
	var size float64
	if allocCPU > 0 {
		size = float64(max(freeCPU, 0)) / float64(allocCPU)
	}
	if allocMem > 0 {
		size = max(size, float64(max(freeMem, 0))/float64(allocMem))
	}
	if size == 0 {
		return 0
	}
	misfits := 0
	for _, sh := range shapes {
		if slots < 1 || sh.MilliCPU > freeCPU || sh.Memory > freeMem {
			misfits += sh.Count
		}
	}
	return float64(misfits) / float64(total) * size
}

// NormalizeScore maps the lowest raw score to 0 and the highest to 100.
func (*Plugin) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	framework.MinMaxNormalizeScore(framework.MaxNodeScore, scores)
	return nil
}

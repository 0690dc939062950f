package tainttoleration

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "tainttoleration"

func init() {
	framework.Register(framework.KindFilter, Name, "taints and tolerations: filter NoSchedule/NoExecute, prefer fewer PreferNoSchedule", New)
}

// Plugin implements Filter, PreScore and Score.
type Plugin struct{ h framework.Handle }

// New is the factory; no args.
func New(args json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	return &Plugin{h: h}, framework.DecodeArgs(args, &struct{}{})
}

// NodeLocal implements framework.NodeLocalPlugin.
func (*Plugin) NodeLocal() {}

func (p *Plugin) snapshot() *framework.Snapshot {
	if p.h == nil {
		return nil
	}
	return p.h.Snapshot()
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

func tolerated(tols []v1.Toleration, taint *v1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(logr.Discard(), taint, false) {
			return true
		}
	}
	return false
}

// Filter rejects the first untolerated NoSchedule/NoExecute taint.
func (*Plugin) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	taints := node.Taints()
	for i := range taints {
		t := &taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(pod.Pod.Spec.Tolerations, t) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

const stateKey framework.StateKey = Name + "/prescore"

type preScoreState struct{ tolerations []v1.Toleration }

func (s *preScoreState) Clone() framework.StateData { return s }

// PreScore keeps the tolerations that can tolerate PreferNoSchedule. When
// no feasible node has a PreferNoSchedule taint every node scores the
// same, which changes no choice: Score is skipped.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, nodes []*framework.NodeInfo) *framework.Status {
	tainted := false
	if snap := p.snapshot(); snap != nil && snap.NumNodes() > 0 {
		// The snapshot's count: no look at every feasible node.
		tainted = snap.NodesWithPreferNoScheduleTaint() > 0
	} else {
		for _, n := range nodes {
			if n.HasPreferNoScheduleTaint() {
				tainted = true
				break
			}
		}
	}
	if !tainted {
		return framework.NewStatus(framework.Skip)
	}
	var tols []v1.Toleration
	for _, t := range pod.Pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == v1.TaintEffectPreferNoSchedule {
			tols = append(tols, t)
		}
	}
	state.Write(stateKey, &preScoreState{tolerations: tols})
	return nil
}

// Score counts untolerated PreferNoSchedule taints (fewer is better,
// reversed in NormalizeScore).
func (*Plugin) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*preScoreState](state, stateKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	var n int64
	taints := node.Taints()
	for i := range taints {
		if taints[i].Effect == v1.TaintEffectPreferNoSchedule && !tolerated(s.tolerations, &taints[i]) {
			n++
		}
	}
	return n, nil
}

// NormalizeScore maps the count to [0, 100], fewest taints best.
func (*Plugin) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	return framework.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
}

// EventsToRegister: taints change on node updates.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventNode, Action: framework.Add | framework.Update}}
}

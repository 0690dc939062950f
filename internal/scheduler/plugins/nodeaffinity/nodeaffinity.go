package nodeaffinity

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "nodeaffinity"

// Reason is reported for nodes that do not match.
const Reason = "node(s) didn't match Pod's node affinity/selector"

func init() {
	framework.Register(framework.KindFilter, Name, "nodeSelector and node affinity (required filter, preferred score)", New)
}

// Args configure the plugin.
type Args struct {
	// AddedAffinity is required of every pod of the profile, on top of its
	// own (for example to keep a profile on a node pool).
	AddedAffinity *v1.NodeAffinity `json:"addedAffinity,omitempty"`
}

// Plugin implements PreFilter, Filter, PreScore and Score.
type Plugin struct {
	added          *nodeaffinity.NodeSelector
	addedPreferred *nodeaffinity.PreferredSchedulingTerms
}

// New is the factory.
func New(raw json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	var args Args
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	p := &Plugin{}
	if a := args.AddedAffinity; a != nil {
		if a.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			s, err := nodeaffinity.NewNodeSelector(a.RequiredDuringSchedulingIgnoredDuringExecution)
			if err != nil {
				return nil, fmt.Errorf("addedAffinity: %w", err)
			}
			p.added = s
		}
		if len(a.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
			t, err := nodeaffinity.NewPreferredSchedulingTerms(a.PreferredDuringSchedulingIgnoredDuringExecution)
			if err != nil {
				return nil, fmt.Errorf("addedAffinity: %w", err)
			}
			p.addedPreferred = t
		}
	}
	return p, nil
}

// NodeLocal implements framework.NodeLocalPlugin: the verdict and score
// depend on the pod and the node only.
func (*Plugin) NodeLocal() {}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

const (
	filterKey framework.StateKey = Name + "/prefilter"
	scoreKey  framework.StateKey = Name + "/prescore"
)

type filterState struct {
	required nodeaffinity.RequiredNodeAffinity
}

func (s *filterState) Clone() framework.StateData { return s }

type scoreState struct {
	preferred *nodeaffinity.PreferredSchedulingTerms
}

func (s *scoreState) Clone() framework.StateData { return s }

// PreFilter parses the pod's selector and required terms once.
func (p *Plugin) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	spec := &pod.Pod.Spec
	hasRequired := spec.Affinity != nil && spec.Affinity.NodeAffinity != nil && spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil
	if len(spec.NodeSelector) == 0 && !hasRequired && p.added == nil {
		return nil, framework.NewStatus(framework.Skip)
	}
	if hasRequired {
		// An invalid selector can never match; say so once, not per node.
		if _, err := nodeaffinity.NewNodeSelector(spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("invalid node affinity: %v", err))
		}
	}
	state.Write(filterKey, &filterState{required: nodeaffinity.GetRequiredNodeAffinity(pod.Pod)})
	return nil, nil
}

// Filter matches the node against nodeSelector, the required terms and
// the profile's added affinity.
func (p *Plugin) Filter(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	s, err := framework.ReadState[*filterState](state, filterKey)
	if err != nil {
		return framework.AsStatus(err)
	}
	if p.added != nil && !p.added.Match(node.Node()) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) didn't match scheduler-enforced node affinity")
	}
	ok, err := s.required.Match(node.Node())
	if err != nil {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("invalid node affinity: %v", err))
	}
	if !ok {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, Reason)
	}
	return nil
}

// PreScore parses the preferred terms; pods without any skip scoring.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	a := pod.Pod.Spec.Affinity
	if (a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0) && p.addedPreferred == nil {
		return framework.NewStatus(framework.Skip)
	}
	var terms *nodeaffinity.PreferredSchedulingTerms
	if a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		t, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			return framework.AsStatus(fmt.Errorf("parsing preferred node affinity: %w", err))
		}
		terms = t
	}
	state.Write(scoreKey, &scoreState{preferred: terms})
	return nil
}

// Score sums the weights of matching preferred terms.
func (p *Plugin) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*scoreState](state, scoreKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	var v int64
	if s.preferred != nil {
		v += s.preferred.Score(node.Node())
	}
	if p.addedPreferred != nil {
		v += p.addedPreferred.Score(node.Node())
	}
	return v, nil
}

// NormalizeScore scales to [0, 100], best match 100.
func (*Plugin) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	return framework.DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
}

// EventsToRegister: labels change on node updates.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventNode, Action: framework.Add | framework.Update}}
}

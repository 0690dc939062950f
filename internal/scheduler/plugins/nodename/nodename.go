package nodename

import (
	"context"
	"encoding/json"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "nodename"

// Reason is reported for nodes other than the requested one.
const Reason = "node(s) didn't match the requested node name"

func init() {
	framework.Register(framework.KindFilter, Name, "only the node named in spec.nodeName fits", New)
}

// Plugin implements PreFilter and Filter.
type Plugin struct{}

// New is the factory; no args.
func New(args json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	return &Plugin{}, framework.DecodeArgs(args, &struct{}{})
}

// NodeLocal implements framework.NodeLocalPlugin: the verdict and score
// depend on the pod and the node only.
func (*Plugin) NodeLocal() {}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// PreFilter narrows the nodes to the named one, or skips.
func (*Plugin) PreFilter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	if pod.Pod.Spec.NodeName == "" {
		return nil, framework.NewStatus(framework.Skip)
	}
	return &framework.PreFilterResult{NodeNames: map[string]struct{}{pod.Pod.Spec.NodeName: {}}}, nil
}

// Filter rejects every node but the named one.
func (*Plugin) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if n := pod.Pod.Spec.NodeName; n != "" && n != node.Name() {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, Reason)
	}
	return nil
}

// EventsToRegister: only a new node can help.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventNode, Action: framework.Add}}
}

package nodeports

import (
	"context"
	"encoding/json"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "nodeports"

// Reason is reported when a port is taken.
const Reason = "node(s) didn't have free ports for the requested pod ports"

func init() {
	framework.Register(framework.KindFilter, Name, "reject nodes whose host ports are taken", New)
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

// PreFilter skips pods without host ports.
func (*Plugin) PreFilter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	if len(pod.HostPorts) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	return nil, nil
}

// Filter rejects a node where any wanted port conflicts.
func (*Plugin) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if Fits(pod.HostPorts, node.UsedPorts) {
		return nil
	}
	return framework.NewStatus(framework.Unschedulable, Reason)
}

// Fits reports whether want conflicts with none of used.
func Fits(want, used []framework.HostPort) bool {
	for _, w := range want {
		for _, u := range used {
			if w.Conflicts(u) {
				return false
			}
		}
	}
	return true
}

// EventsToRegister: a pod leaving or a new node.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.EventAssignedPod, Action: framework.Delete},
		{Resource: framework.EventNode, Action: framework.Add},
	}
}

package nodeunschedulable

import (
	"context"
	"encoding/json"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "nodeunschedulable"

// Reason is reported for cordoned nodes.
const Reason = "node(s) were unschedulable"

func init() {
	framework.Register(framework.KindFilter, Name, "reject cordoned nodes unless tolerated", New)
}

// Plugin implements Filter.
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

var unschedulableTaint = v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}

// Filter rejects a cordoned node the pod does not tolerate.
func (*Plugin) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if !node.Unschedulable() {
		return nil
	}
	for i := range pod.Pod.Spec.Tolerations {
		if pod.Pod.Spec.Tolerations[i].ToleratesTaint(logr.Discard(), &unschedulableTaint, false) {
			return nil
		}
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, Reason)
}

// EventsToRegister: a new or uncordoned node.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventNode, Action: framework.Add | framework.Update}}
}

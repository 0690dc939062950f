package schedulinggates

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "schedulinggates"

func init() {
	framework.Register(framework.KindPreEnqueue, Name, "hold pods with scheduling gates out of the queue", New)
}

// Plugin implements PreEnqueue.
type Plugin struct{}

// New is the factory; the plugin takes no args.
func New(args json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	return &Plugin{}, framework.DecodeArgs(args, &struct{}{})
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// PreEnqueue returns Pending while the pod has gates.
func (*Plugin) PreEnqueue(_ context.Context, pod *v1.Pod) *framework.Status {
	if len(pod.Spec.SchedulingGates) == 0 {
		return nil
	}
	gates := make([]string, len(pod.Spec.SchedulingGates))
	for i, g := range pod.Spec.SchedulingGates {
		gates[i] = g.Name
	}
	return framework.NewStatus(framework.Pending, fmt.Sprintf("waiting for scheduling gates: %v", gates))
}

// EventsToRegister: only an update of the pod itself can remove gates.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.EventUnscheduledPod, Action: framework.Update}}
}

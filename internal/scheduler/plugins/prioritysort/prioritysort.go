package prioritysort

import (
	"encoding/json"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "prioritysort"

func init() {
	framework.Register(framework.KindQueueSort, Name, "order the queue by priority, then arrival", New)
}

// Plugin implements QueueSort.
type Plugin struct{}

// New is the factory; no args.
func New(args json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	return &Plugin{}, framework.DecodeArgs(args, &struct{}{})
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// Less puts higher priority first, then earlier arrival.
func (*Plugin) Less(a, b *framework.QueuedPodInfo) bool {
	pa, pb := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
	if pa != pb {
		return pa > pb
	}
	return a.Timestamp.Before(b.Timestamp)
}

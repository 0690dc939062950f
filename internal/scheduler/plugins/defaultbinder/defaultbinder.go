package defaultbinder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "defaultbinder"

func init() {
	framework.Register(framework.KindBind, Name, "bind through the pods/binding subresource", New)
}

// Plugin implements Bind.
type Plugin struct{ h framework.Handle }

// New is the factory; no args.
func New(args json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	return &Plugin{h: h}, framework.DecodeArgs(args, &struct{}{})
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// Bind posts a Binding for the pod (with its UID as a precondition, so a
// pod deleted and recreated under the same name is never bound by
// mistake), carrying the scheduler's BindingAnnotations if any.
func (p *Plugin) Bind(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, nodeName string) *framework.Status {
	client := p.h.ClientSet()
	if client == nil {
		return framework.AsStatus(errors.New("no client to bind with"))
	}
	b := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Pod.Namespace, Name: pod.Pod.Name, UID: pod.Pod.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if d, err := state.Read(framework.BindingAnnotationsKey); err == nil {
		// The API server copies a Binding's annotations onto the pod.
		b.Annotations = map[string]string(d.(framework.BindingAnnotations))
	}
	if err := client.CoreV1().Pods(b.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		return framework.AsStatus(fmt.Errorf("binding %s/%s to %s: %w", b.Namespace, b.Name, nodeName, err))
	}
	return nil
}

package defaultbinder

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestBindPostsBinding(t *testing.T) {
	client := fake.NewClientset()
	var got *v1.Binding
	client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		got = a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
		return true, got, nil
	})
	p := &Plugin{h: &st.Handle{Client: client}}
	pod := st.Pod("web").Obj()
	if s := p.Bind(t.Context(), framework.NewCycleState(), framework.NewPodInfo(pod), "n1"); !s.IsSuccess() {
		t.Fatalf("Bind: %v", s)
	}
	if got == nil || got.Name != "web" || got.Namespace != "default" || got.UID != pod.UID || got.Target.Name != "n1" || got.Target.Kind != "Node" {
		t.Fatalf("binding = %+v, want web/default uid %s -> Node n1", got, pod.UID)
	}
}

package nodename

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestFilter(t *testing.T) {
	snap := st.Cluster([]*v1.Node{st.Node("n1").Obj(), st.Node("n2").Obj()}, nil, nil)
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want map[string]framework.Code
	}{
		{"no node name", st.Pod("p").Obj(), map[string]framework.Code{"n1": framework.Success, "n2": framework.Success}},
		{"named n2", st.Pod("p").Node("n2").Obj(), map[string]framework.Code{"n1": framework.UnschedulableAndUnresolvable, "n2": framework.Success}},
		{"named missing node", st.Pod("p").Node("n9").Obj(), map[string]framework.Code{"n1": framework.UnschedulableAndUnresolvable, "n2": framework.UnschedulableAndUnresolvable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := st.Codes(st.Filter(t.Context(), &Plugin{}, tc.pod, snap))
			for n, want := range tc.want {
				if got[n] != want {
					t.Errorf("node %s: %v, want %v", n, got[n], want)
				}
			}
		})
	}
}

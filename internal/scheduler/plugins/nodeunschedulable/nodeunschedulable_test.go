package nodeunschedulable

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestFilter(t *testing.T) {
	snap := st.Cluster([]*v1.Node{st.Node("ok").Obj(), st.Node("cordoned").Unschedulable().Obj()}, nil, nil)
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want framework.Code
	}{
		{"plain pod", st.Pod("p").Obj(), framework.UnschedulableAndUnresolvable},
		{"tolerates the taint", st.Pod("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoSchedule).Obj(), framework.Success},
		{"tolerates everything", st.Pod("p").Toleration("", v1.TolerationOpExists, "", "").Obj(), framework.Success},
		{"tolerates another effect", st.Pod("p").Toleration(v1.TaintNodeUnschedulable, v1.TolerationOpExists, "", v1.TaintEffectNoExecute).Obj(), framework.UnschedulableAndUnresolvable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := st.Filter(t.Context(), &Plugin{}, tc.pod, snap)
			if got["ok"].Code() != framework.Success {
				t.Errorf("uncordoned node: %v", got["ok"])
			}
			if got["cordoned"].Code() != tc.want {
				t.Errorf("cordoned node: %v, want %v", got["cordoned"], tc.want)
			}
		})
	}
}

package nodeports

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing *v1.Pod
		pod      *v1.Pod
		want     framework.Code
	}{
		{"no ports", st.Pod("e").Node("n").HostPort("TCP", "", 80).Obj(), st.Pod("p").Obj(), framework.Success},
		{"same port", st.Pod("e").Node("n").HostPort("TCP", "", 80).Obj(), st.Pod("p").HostPort("TCP", "", 80).Obj(), framework.Unschedulable},
		{"other protocol", st.Pod("e").Node("n").HostPort("TCP", "", 80).Obj(), st.Pod("p").HostPort("UDP", "", 80).Obj(), framework.Success},
		{"other port", st.Pod("e").Node("n").HostPort("TCP", "", 80).Obj(), st.Pod("p").HostPort("TCP", "", 8080).Obj(), framework.Success},
		{"distinct IPs", st.Pod("e").Node("n").HostPort("TCP", "10.0.0.1", 80).Obj(), st.Pod("p").HostPort("TCP", "10.0.0.2", 80).Obj(), framework.Success},
		{"wildcard vs IP", st.Pod("e").Node("n").HostPort("TCP", "10.0.0.1", 80).Obj(), st.Pod("p").HostPort("TCP", "0.0.0.0", 80).Obj(), framework.Unschedulable},
		{"IP vs wildcard default", st.Pod("e").Node("n").HostPort("", "", 80).Obj(), st.Pod("p").HostPort("TCP", "10.0.0.2", 80).Obj(), framework.Unschedulable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := st.Cluster([]*v1.Node{st.Node("n").Obj()}, []*v1.Pod{tc.existing}, nil)
			if got := st.Filter(t.Context(), &Plugin{}, tc.pod, snap)["n"]; got.Code() != tc.want {
				t.Fatalf("Filter = %v, want %v", got, tc.want)
			}
		})
	}
}

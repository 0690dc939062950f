package schedulinggates

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestPreEnqueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want framework.Code
	}{
		{"no gates", st.Pod("p").Obj(), framework.Success},
		{"one gate", st.Pod("p").Gate("example.com/quota").Obj(), framework.Pending},
		{"two gates", st.Pod("p").Gate("a").Gate("b").Obj(), framework.Pending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := (&Plugin{}).PreEnqueue(t.Context(), tc.pod)
			if s.Code() != tc.want {
				t.Fatalf("PreEnqueue = %v, want %v", s, tc.want)
			}
		})
	}
}

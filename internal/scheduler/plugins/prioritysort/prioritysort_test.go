package prioritysort

import (
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestLess(t *testing.T) {
	t0 := time.Unix(1000, 0)
	q := func(prio int32, at time.Time) *framework.QueuedPodInfo {
		return &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(st.Pod("p").Priority(prio).Obj()), Timestamp: at}
	}
	for _, tc := range []struct {
		name string
		a, b *framework.QueuedPodInfo
		want bool
	}{
		{"higher priority first", q(10, t0.Add(time.Second)), q(1, t0), true},
		{"lower priority later", q(1, t0), q(10, t0), false},
		{"same priority, earlier first", q(5, t0), q(5, t0.Add(time.Second)), true},
		{"same priority, later second", q(5, t0.Add(time.Second)), q(5, t0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&Plugin{}).Less(tc.a, tc.b); got != tc.want {
				t.Fatalf("Less = %v, want %v", got, tc.want)
			}
		})
	}
}

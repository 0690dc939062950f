package scheduler

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestPendingShapes(t *testing.T) {
	a, b := shapeKey{1000, 1 << 30}, shapeKey{500, 1 << 30}
	ps := newPendingShapes()
	want := func(max int, exp ...framework.PendingShape) {
		t.Helper()
		if got := ps.PendingShapes(max); !slices.Equal(got, exp) {
			t.Fatalf("PendingShapes(%d) = %v, want %v", max, got, exp)
		}
	}
	want(0)
	ps.set("p1", a)
	ps.set("p2", a)
	ps.set("p3", b)
	want(0, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 2}, framework.PendingShape{MilliCPU: 500, Memory: 1 << 30, Count: 1})
	want(1, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 2})
	// Equal counts: smaller CPU first.
	ps.assume("p1", true)
	want(0, framework.PendingShape{MilliCPU: 500, Memory: 1 << 30, Count: 1}, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 1})
	ps.assume("p1", true) // idempotent
	ps.set("p1", a)       // an update while assumed changes nothing
	want(0, framework.PendingShape{MilliCPU: 500, Memory: 1 << 30, Count: 1}, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 1})
	ps.assume("p1", false) // binding undone: pending again
	want(0, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 2}, framework.PendingShape{MilliCPU: 500, Memory: 1 << 30, Count: 1})
	ps.set("p2", b) // spec changed
	want(0, framework.PendingShape{MilliCPU: 500, Memory: 1 << 30, Count: 2}, framework.PendingShape{MilliCPU: 1000, Memory: 1 << 30, Count: 1})
	ps.remove("p1")
	ps.remove("p1")
	ps.assume("gone", true)
	ps.remove("p2")
	ps.remove("p3")
	want(0)
}

// TestSchedulerTracksPendingShapes: the framework sees the scheduler's
// pending pods; bound pods leave, unschedulable ones stay.
func TestSchedulerTracksPendingShapes(t *testing.T) {
	pods := []*v1.Pod{
		st.Pod("a").UID("a").Req("cpu", "2", "memory", "1Gi").Obj(),
		st.Pod("b").UID("b").Req("cpu", "2", "memory", "1Gi").Obj(),
		st.Pod("huge").UID("huge").Req("cpu", "64", "memory", "1Gi").Obj(),
		st.Pod("other").UID("other").SchedulerName("default-scheduler").Req("cpu", "1").Obj(),
	}
	var objs []runtime.Object
	for _, p := range pods {
		objs = append(objs, p)
	}
	client, _ := newFakeClient(t, objs...)
	s := newTestScheduler(t, testConfig(), Options{Client: client})
	s.OnNodeAdd(st.Node("n").Cap("cpu", "8", "memory", "8Gi", "pods", "10").Obj())
	for _, p := range pods {
		s.OnPodAdd(p)
	}
	fw := s.profiles["keelson"]
	want := []framework.PendingShape{{MilliCPU: 2000, Memory: 1 << 30, Count: 2}, {MilliCPU: 64000, Memory: 1 << 30, Count: 1}}
	if got := fw.PendingShapes(10); !slices.Equal(got, want) {
		t.Fatalf("before scheduling: PendingShapes = %v, want %v", got, want)
	}
	drain(t, s)
	// The informer reports the bindings.
	for _, name := range []string{"a", "b"} {
		p, err := client.Tracker().Get(podsGVR, "default", name)
		if err != nil {
			t.Fatal(err)
		}
		s.OnPodUpdate(p.(*v1.Pod))
	}
	want = []framework.PendingShape{{MilliCPU: 64000, Memory: 1 << 30, Count: 1}}
	if got := fw.PendingShapes(10); !slices.Equal(got, want) {
		t.Fatalf("after scheduling: PendingShapes = %v, want %v", got, want)
	}
	s.OnPodDelete(pods[2])
	if got := fw.PendingShapes(10); len(got) != 0 {
		t.Fatalf("after delete: PendingShapes = %v, want none", got)
	}
}

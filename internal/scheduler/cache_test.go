package scheduler

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestCacheAssumeConfirmForget(t *testing.T) {
	c := NewCache(clocktesting.NewFakeClock(time.Unix(0, 0)))
	c.AddNode(st.Node("a").Obj())
	c.AddNode(st.Node("b").Obj())
	snap := framework.NewSnapshot(nil, nil)
	c.UpdateSnapshot(snap)
	if snap.NumNodes() != 2 {
		t.Fatalf("snapshot has %d nodes, want 2", snap.NumNodes())
	}
	before, _ := snap.Get("b")

	pod := st.Pod("p").Req("cpu", "1").Obj()
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = "a"
	if err := c.AssumePod(framework.NewPodInfo(assumed), "a"); err != nil {
		t.Fatal(err)
	}
	c.UpdateSnapshot(snap)
	a, _ := snap.Get("a")
	if a.Requested.MilliCPU != 1000 || len(a.Pods) != 1 {
		t.Fatalf("assumed pod not in snapshot: %+v", a.Requested)
	}
	if after, _ := snap.Get("b"); after != before {
		t.Fatal("unchanged node was cloned again")
	}
	// The informer confirms the binding on the same node.
	c.AddPod(assumed)
	if c.IsAssumed(pod.UID) {
		t.Fatal("pod still assumed after informer add")
	}
	if n, ok := c.BoundNode(pod.UID); !ok || n != "a" {
		t.Fatalf("BoundNode = %q %v", n, ok)
	}
	// A second pod assumed then forgotten leaves no trace.
	q := st.Pod("q").Req("cpu", "2").Node("b").Obj()
	_ = c.AssumePod(framework.NewPodInfo(q), "b")
	c.ForgetPod(q.UID)
	c.UpdateSnapshot(snap)
	if b, _ := snap.Get("b"); b.Requested.MilliCPU != 0 {
		t.Fatalf("forgotten pod still counted on b: %d", b.Requested.MilliCPU)
	}
	c.RemovePod(assumed)
	c.RemoveNode("b")
	c.UpdateSnapshot(snap)
	if a, _ := snap.Get("a"); snap.NumNodes() != 1 || a.Requested.MilliCPU != 0 {
		t.Fatalf("after removals: %d nodes, a uses %d", snap.NumNodes(), a.Requested.MilliCPU)
	}
	if !c.recentlyDeleted(pod.UID) {
		t.Fatal("deleted pod not remembered")
	}
}

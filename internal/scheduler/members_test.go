package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func testPod(uid, profile string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid)}, Spec: v1.PodSpec{SchedulerName: profile}}
}

func TestRendezvousSpreadsAndMovesLittle(t *testing.T) {
	three := []member{{id: "a"}, {id: "b"}, {id: "c"}}
	counts := map[string]int{}
	moved := 0
	const n = 3000
	for i := range n {
		key := fmt.Sprintf("pod-%d", i)
		o3 := rendezvous(key, "keelson", three)
		counts[o3]++
		// Removing c moves only c's pods.
		if o2 := rendezvous(key, "keelson", three[:2]); o2 != o3 {
			moved++
			if o3 != "c" {
				t.Fatalf("%s moved from %s to %s when c left", key, o3, o2)
			}
		}
	}
	for id, c := range counts {
		if c < n/3-n/10 || c > n/3+n/10 {
			t.Errorf("member %s owns %d of %d pods, want about a third", id, c, n)
		}
	}
	if moved != counts["c"] {
		t.Errorf("moved %d, want c's %d", moved, counts["c"])
	}
	// Profiles: only members serving the pod's schedulerName own it.
	mixed := []member{{id: "a", profiles: []string{"other"}}, {id: "b", profiles: []string{"keelson"}}}
	for i := range 50 {
		if o := rendezvous(fmt.Sprint(i), "keelson", mixed); o != "b" {
			t.Fatalf("owner %s, want b (the only member serving keelson)", o)
		}
	}
}

func TestMembersThroughLeases(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Now())
	changes := make(chan struct{}, 16)
	start := func(ctx context.Context, id string) *Members {
		m := NewMembers(MembersOptions{Client: client, Namespace: "kube-system", Self: id, Profiles: []string{"keelson"},
			LeaseDuration: 6 * time.Second, Clock: clk, OnChange: func() { changes <- struct{}{} }})
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := start(ctx, "sched-a")
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	b := start(bctx, "sched-b")
	waitLive := func(m *Members, want int) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return len(m.Live()) == want, nil
		}); err != nil {
			t.Fatalf("%s sees %v, want %d live", m.self, m.Live(), want)
		}
	}
	waitLive(a, 2)
	waitLive(b, 2)
	ownedA, ownedB := 0, 0
	for i := range 200 {
		p := testPod(fmt.Sprint("uid-", i), "keelson")
		if a.Owner(p) != b.Owner(p) {
			t.Fatalf("instances disagree on %s: %s vs %s", p.UID, a.Owner(p), b.Owner(p))
		}
		if a.Owns(p) {
			ownedA++
		}
		if b.Owns(p) {
			ownedB++
		}
	}
	if ownedA+ownedB != 200 || ownedA < 60 || ownedB < 60 {
		t.Fatalf("a owns %d, b owns %d of 200", ownedA, ownedB)
	}
	// Members of a gang share one owner.
	owner := ""
	for i := range 20 {
		p := testPod(fmt.Sprint("g-", i), "keelson")
		p.Labels = map[string]string{gang.LabelPodGroup: "g"}
		if o := a.Owner(p); owner != "" && o != owner {
			t.Fatalf("gang members owned by %s and %s", owner, o)
		} else {
			owner = o
		}
	}
	// b leaves cleanly: stopping it deletes its Lease. (Deleting the Lease
	// under a running b raced with b renewing it once the clock moved.)
	stopB()
	waitLive(a, 1)
	for i := range 50 {
		if p := testPod(fmt.Sprint("uid-", i), "keelson"); !a.Owns(p) {
			t.Fatalf("a does not own %s after b left", p.UID)
		}
	}
	// Expiry without deletion: a lease not renewed for its duration.
	c := NewMembers(MembersOptions{Client: client, Namespace: "kube-system", Self: "sched-c", Profiles: []string{"keelson"}, LeaseDuration: 6 * time.Second, Clock: clk})
	if err := c.renew(ctx); err != nil {
		t.Fatal(err)
	}
	waitLive(a, 2)
	// a's own renewal and c's expiry both come due: once a has renewed
	// after c's Lease ran out, c is gone.
	clk.Step(7 * time.Second)
	waitLive(a, 1)
}

// An instance that cannot renew its own Lease (an overloaded API server)
// does not drop others whose Leases ran out meanwhile: it has no proof that
// they, rather than the API server, stopped. Once it renews, it does.
func TestMembersKeptWhileOwnRenewalsFail(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	m := NewMembers(MembersOptions{Self: "a", LeaseDuration: 15 * time.Second, Clock: clk})
	m.renewedOK = clk.Now()
	m.all["b"] = member{id: "b", renewed: clk.Now(), expires: clk.Now().Add(15 * time.Second)}
	m.refresh()
	if live := m.Live(); len(live) != 2 {
		t.Fatalf("live %v, want a and b", live)
	}
	clk.Step(20 * time.Second) // b's Lease ran out; a's renewals failed too
	m.refresh()
	if live := m.Live(); len(live) != 2 {
		t.Fatalf("live %v while a could not renew either, want b kept", live)
	}
	m.mu.Lock()
	m.renewedOK = clk.Now()
	m.mu.Unlock()
	m.refresh()
	if live := m.Live(); len(live) != 1 {
		t.Fatalf("live %v after a renewed past b's expiry, want b dropped", live)
	}
}

func TestQueueForeignPods(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	mine := map[types.UID]bool{"m1": true}
	stolen := 0
	q := newTestQueue(clk, nil)
	q.opts.Owned = func(p *v1.Pod) bool { return mine[p.UID] }
	q.opts.Stealable = func(p *v1.Pod) bool { return gang.GroupName(p) == "" }
	q.opts.StealAfter = 2 * time.Second
	q.opts.OnSteal = func() { stolen++ }
	q.Add(testPod("m1", "keelson"))
	q.Add(testPod("f1", "keelson"))
	g := testPod("g1", "keelson")
	g.Labels = map[string]string{gang.LabelPodGroup: "x"}
	q.Add(g)
	if q.Foreign() != 2 {
		t.Fatalf("foreign = %d, want 2", q.Foreign())
	}
	p, _, err := q.Pop(t.Context())
	if err != nil || p.Pod.UID != "m1" {
		t.Fatalf("popped %v, %v; want m1", p, err)
	}
	// Nothing of ours left: a foreign pod is taken once it waited.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	if p, _, err := q.Pop(ctx); err == nil {
		t.Fatalf("popped foreign %s before stealAfter", p.Pod.UID)
	}
	cancel()
	clk.Step(3 * time.Second)
	if p, _, err := q.Pop(t.Context()); err != nil || p.Pod.UID != "f1" || stolen != 1 {
		t.Fatalf("popped %v, %v (stolen %d); want f1 stolen", p, err, stolen)
	}
	// The gang member is never stolen, but moves when it becomes ours.
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	if p, _, err := q.Pop(ctx); err == nil {
		t.Fatalf("popped gang member %s", p.Pod.UID)
	}
	cancel()
	mine["g1"] = true
	q.Reassign()
	if p, _, err := q.Pop(t.Context()); err != nil || p.Pod.UID != "g1" {
		t.Fatalf("popped %v, %v; want g1 after reassign", p, err)
	}
	// A pod of ours never attempted goes foreign when it stops being ours.
	mine["m2"] = true
	q.Add(testPod("m2", "keelson"))
	mine["m2"] = false
	q.Reassign()
	if q.Foreign() != 1 {
		t.Fatalf("foreign = %d after reassign, want 1", q.Foreign())
	}
	q.Delete("m2")
	if q.Foreign() != 0 || q.Has("m2") {
		t.Fatal("deleted foreign pod still queued")
	}
}

func TestCrossNodePodsShareAnOwnerPerNamespace(t *testing.T) {
	m := &Members{self: "a", live: []member{{id: "a"}, {id: "b"}, {id: "c"}}}
	anti := func(name, ns string) *v1.Pod {
		p := st.Pod(name).Obj()
		p.Namespace, p.UID = ns, types.UID(ns+"/"+name)
		p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{TopologyKey: "kubernetes.io/hostname"}}}}
		return p
	}
	owners := map[string]bool{}
	plain := map[string]bool{}
	for i := range 50 {
		owners[m.Owner(anti(fmt.Sprintf("p%d", i), "ns1"))] = true
		p := st.Pod(fmt.Sprintf("q%d", i)).Obj()
		p.UID = types.UID(fmt.Sprintf("q%d", i))
		plain[m.Owner(p)] = true
	}
	if len(owners) != 1 {
		t.Errorf("pods with required anti-affinity in one namespace went to %d instances, want 1", len(owners))
	}
	if len(plain) != 3 {
		t.Errorf("plain pods went to %d instances, want all 3", len(plain))
	}
	spread := st.Pod("s").Obj()
	spread.Spec.TopologySpreadConstraints = []v1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: v1.ScheduleAnyway}}
	if CrossNode(spread) {
		t.Error("a ScheduleAnyway constraint counted as cross-node")
	}
	spread.Spec.TopologySpreadConstraints[0].WhenUnsatisfiable = v1.DoNotSchedule
	if !CrossNode(spread) {
		t.Error("a DoNotSchedule constraint not counted as cross-node")
	}
}

// An idle instance does not steal from an owner that is binding its pods
// (each binding removes one of them from the foreign set), only from one
// that made no progress for StealAfter.
func TestQueueStealsOnlyFromStuckOwners(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	owner := map[types.UID]string{}
	q := newTestQueue(clk, nil)
	q.opts.Owned = func(p *v1.Pod) bool { return owner[p.UID] == "self" }
	q.opts.OwnerOf = func(p *v1.Pod) string { return owner[p.UID] }
	q.opts.StealAfter = 2 * time.Second
	for i := range 3 {
		for _, o := range []string{"busy", "stuck"} {
			uid := types.UID(fmt.Sprintf("%s-%d", o, i))
			owner[uid] = o
			q.Add(testPod(string(uid), "keelson"))
		}
	}
	popNow := func() *framework.QueuedPodInfo {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		p, _, err := q.Pop(ctx)
		if err != nil {
			return nil
		}
		return p
	}
	clk.Step(3 * time.Second)
	// "busy" binds one of its pods (it leaves the foreign set here).
	q.Delete("busy-0")
	for range 3 {
		p := popNow()
		if p == nil {
			t.Fatal("nothing stolen from the stuck owner")
		}
		if owner[p.Pod.UID] != "stuck" {
			t.Fatalf("stole %s from an owner making progress", p.Pod.UID)
		}
	}
	if p := popNow(); p != nil {
		t.Fatalf("stole %s from an owner making progress", p.Pod.UID)
	}
	// busy stops making progress: its pods are taken after StealAfter.
	clk.Step(3 * time.Second)
	if p := popNow(); p == nil || owner[p.Pod.UID] != "busy" {
		t.Fatalf("popped %v, want a pod of the owner that stopped", p)
	}
}

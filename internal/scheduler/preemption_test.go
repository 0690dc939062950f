package scheduler

import (
	"sort"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func TestPreemption(t *testing.T) {
	pdbFor := func(app string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "pdb-" + app, Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
			Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
		}
	}
	never := v1.PreemptNever
	for _, tc := range []struct {
		name        string
		existing    []*v1.Pod // on 4-CPU nodes a and b
		pdbs        []runtime.Object
		pod         *v1.Pod
		wantVictims []string
		wantNode    string
	}{
		{
			name: "fewest victims",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "2").Obj(), st.Pod("a2").Node("a").Priority(1).Req("cpu", "2").Obj(),
				st.Pod("b1").Node("b").Priority(1).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "lowest priority",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(5).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(2).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "only what is needed; keep the higher priority",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "2").Obj(), st.Pod("a2").Node("a").Priority(3).Req("cpu", "2").Obj(),
				st.Pod("b1").Node("b").Priority(20).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "2").Obj(), wantVictims: []string{"a1"}, wantNode: "a",
		},
		{
			name: "PDB respected when another node works",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Label("app", "db").Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(2).Label("app", "web").Req("cpu", "4").Obj(),
			},
			pdbs: []runtime.Object{pdbFor("db", 0)},
			pod:  st.Pod("p").Priority(10).Req("cpu", "3").Obj(), wantVictims: []string{"b1"}, wantNode: "b",
		},
		{
			name: "higher priority pods are never victims",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(10).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(10).Req("cpu", "4").Obj(),
			},
			pod: st.Pod("p").Priority(10).Req("cpu", "3").Obj(),
		},
		{
			name: "preemptionPolicy Never",
			existing: []*v1.Pod{
				st.Pod("a1").Node("a").Priority(1).Req("cpu", "4").Obj(),
				st.Pod("b1").Node("b").Priority(1).Req("cpu", "4").Obj(),
			},
			pod: func() *v1.Pod {
				p := st.Pod("p").Priority(10).Req("cpu", "3").Obj()
				p.Spec.PreemptionPolicy = &never
				return p
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]runtime.Object{tc.pod}, tc.pdbs...)
			for _, p := range tc.existing {
				objs = append(objs, p)
			}
			client, b := newFakeClient(t, objs...)
			s := newTestScheduler(t, testConfig(), Options{Client: client})
			s.OnNodeAdd(st.Node("a").Obj())
			s.OnNodeAdd(st.Node("b").Obj())
			for _, p := range tc.existing {
				s.OnPodAdd(p)
			}
			s.OnPodAdd(tc.pod)
			drain(t, s)
			if len(b.snapshot()) != 0 {
				t.Fatalf("bound %v before victims were gone", b.snapshot())
			}
			var deleted []string
			nominated := ""
			for _, a := range client.Actions() {
				switch a := a.(type) {
				case clienttesting.DeleteAction:
					if a.GetResource().Resource == "pods" {
						deleted = append(deleted, a.GetName())
					}
				case clienttesting.PatchAction:
					if a.GetSubresource() == "status" && a.GetName() == tc.pod.Name && string(a.GetPatch()) == `{"status":{"nominatedNodeName":"`+tc.wantNode+`"}}` {
						nominated = tc.wantNode
					}
				}
			}
			sort.Strings(deleted)
			if len(deleted) != len(tc.wantVictims) || (len(deleted) > 0 && deleted[0] != tc.wantVictims[0]) {
				t.Fatalf("deleted %v, want %v", deleted, tc.wantVictims)
			}
			if tc.wantNode != "" && nominated != tc.wantNode {
				t.Errorf("nominatedNodeName not set to %s", tc.wantNode)
			}
		})
	}
}

// TestPreemptorWokenByVictimDeletion checks the preemption life cycle
// without timing: a second preemptor does not take the room promised to
// the first, a preemptor retried before its victims are gone evicts
// nothing more, and each is retried (with no backoff left to wait: the
// clock never moves) the moment its last victim's deletion arrives.
func TestPreemptorWokenByVictimDeletion(t *testing.T) {
	a1 := st.Pod("a1").Node("a").Priority(1).Req("cpu", "4").Obj()
	b1 := st.Pod("b1").Node("b").Priority(1).Req("cpu", "4").Obj()
	p1 := st.Pod("p1").Priority(10).Req("cpu", "4").Obj()
	p2 := st.Pod("p2").Priority(10).Req("cpu", "4").Obj()
	client, b := newFakeClient(t, a1, b1, p1, p2)
	s := newTestScheduler(t, testConfig(), Options{Client: client, Clock: clocktesting.NewFakeClock(time.Unix(1_000_000, 0))})
	s.OnNodeAdd(st.Node("a").Obj())
	s.OnNodeAdd(st.Node("b").Obj())
	s.OnPodAdd(a1)
	s.OnPodAdd(b1)
	s.OnPodAdd(p1)
	s.OnPodAdd(p2)
	drain(t, s)
	deletes := func() []string {
		var out []string
		for _, a := range client.Actions() {
			if d, ok := a.(clienttesting.DeleteAction); ok && d.GetResource().Resource == "pods" {
				out = append(out, d.GetName())
			}
		}
		sort.Strings(out)
		return out
	}
	if got := deletes(); len(got) != 2 || got[0] != "a1" || got[1] != "b1" {
		t.Fatalf("victims %v, want [a1 b1]: each preemptor must evict on its own node", got)
	}
	if len(b.snapshot()) != 0 {
		t.Fatalf("bound %v before the victims were gone", b.snapshot())
	}
	nodeOf := map[string]string{}
	for _, p := range []*v1.Pod{p1, p2} {
		node, left := s.nominated.waiting(p.UID, s.cache.Has)
		if node == "" || !left {
			t.Fatalf("%s: nominated to %q, victims left %v; want a nomination with its victim outstanding", p.Name, node, left)
		}
		nodeOf[p.Name] = node
	}
	// Our own status patches (condition, nominatedNodeName) do not wake it.
	upd := p1.DeepCopy()
	upd.Status.NominatedNodeName = nodeOf["p1"]
	upd.ResourceVersion = "2"
	s.OnPodUpdate(upd)
	if a, _, _, _ := s.queue.Lengths(); a != 0 {
		t.Fatalf("a status-only update made %d pods active", a)
	}
	// Retried early (e.g. after podMaxInUnschedulable), a preemptor whose
	// victim is still there waits instead of evicting elsewhere.
	s.queue.Activate(p1.UID)
	s.queue.Activate(p2.UID)
	drain(t, s)
	if got := deletes(); len(got) != 2 {
		t.Fatalf("victims %v after an early retry, want still [a1 b1]", got)
	}
	victimOf := map[string]*v1.Pod{"a": a1, "b": b1}
	for _, p := range []*v1.Pod{p1, p2} {
		s.OnPodDelete(victimOf[nodeOf[p.Name]])
		if a, _, _, _ := s.queue.Lengths(); a != 1 {
			t.Fatalf("%s: %d active pods after its victim was deleted, want 1 (no backoff)", p.Name, a)
		}
		drain(t, s)
		if got := b.snapshot()["default/"+p.Name]; got != nodeOf[p.Name] {
			t.Fatalf("%s bound to %q, want its nominated node %s", p.Name, got, nodeOf[p.Name])
		}
	}
}

// TestPreemptorRoomReservedAcrossInstances: a preemptor's instance holds
// its room in the shared ledger before evicting, so that another instance
// that sees the victim leave before it sees the nomination neither binds
// a pod into the room nor evicts for a second preemptor counting on the
// same victim; the preemptor then binds into its room.
func TestPreemptorRoomReservedAcrossInstances(t *testing.T) {
	a1 := st.Pod("a1").UID("a1").Node("a").Priority(1).Req("cpu", "4").Obj()
	p1 := st.Pod("p1").UID("p1").Priority(10).Req("cpu", "3").Obj()
	p2 := st.Pod("p2").UID("p2").Priority(10).Req("cpu", "3").Obj()
	q := st.Pod("q").UID("q").Req("cpu", "2").Obj()
	client, b := newFakeClient(t, a1, p1, p2, q)
	ledger := NewMemoryLedger()
	cfg := testConfig()
	cfg.MultiInstance.Enabled = true
	cfg.MultiInstance.ReservePreemptions = true
	clock := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	newInstance := func(id string, pods ...*v1.Pod) *Scheduler {
		cfg.MultiInstance.InstanceID = id
		s := newTestScheduler(t, cfg, Options{Client: client, Ledger: ledger, Clock: clock})
		s.OnNodeAdd(st.Node("a").Obj()) // 4 CPUs
		for _, p := range pods {
			s.OnPodAdd(p)
		}
		return s
	}
	deletes := func() int {
		n := 0
		for _, a := range client.Actions() {
			if d, ok := a.(clienttesting.DeleteAction); ok && d.GetResource().Resource == "pods" {
				n++
			}
		}
		return n
	}
	s1 := newInstance("s1", a1, p1)
	drain(t, s1)
	if n := deletes(); n != 1 {
		t.Fatalf("%d evictions, want 1 (a1 for p1)", n)
	}
	entries := ledger.Entries("a")
	if len(entries) != 1 || entries[0].UID != "p1" || entries[0].MilliCPU != 3000 {
		t.Fatalf("ledger of a = %+v, want p1's reservation of 3 CPUs", entries)
	}

	// s2 has not seen a1 go: p2 would evict a1 too. Its reservation is
	// refused, and it evicts nothing.
	s2 := newInstance("s2", a1, p2)
	drain(t, s2)
	if n := deletes(); n != 1 {
		t.Fatalf("%d evictions after the second preemptor, want still 1", n)
	}
	if _, left := s2.nominated.waiting(p2.UID, s2.cache.Has); left {
		t.Fatal("p2 nominated with victims left, want no nomination")
	}

	// s3 sees a1 go but not p1's nomination: the room looks free, but its
	// claim counts p1's reservation and fails.
	s3 := newInstance("s3", a1, q)
	s3.OnPodDelete(a1)
	drain(t, s3)
	if got, ok := b.snapshot()["default/q"]; ok {
		t.Fatalf("q bound to %s, into the room reserved for p1", got)
	}

	// p1 binds into its room once its victim's deletion arrives; its
	// claim replaces its reservation.
	s1.OnPodDelete(a1)
	drain(t, s1)
	if got := b.snapshot()["default/p1"]; got != "a" {
		t.Fatalf("p1 bound to %q, want a", got)
	}
	entries = ledger.Entries("a")
	if len(entries) != 1 || entries[0].UID != "p1" || entries[0].By != "s1" {
		t.Fatalf("ledger of a = %+v, want p1's one entry", entries)
	}
}

// TestPreemptorReservationReleasedWhenPlacedElsewhere: a reservation on a
// node the preemptor does not end up on is released by its instance.
func TestPreemptorReservationReleasedWhenPlacedElsewhere(t *testing.T) {
	a1 := st.Pod("a1").UID("a1").Node("a").Priority(1).Req("cpu", "4").Obj()
	p1 := st.Pod("p1").UID("p1").Priority(10).Req("cpu", "3").Obj()
	client, b := newFakeClient(t, a1, p1)
	ledger := NewMemoryLedger()
	cfg := testConfig()
	cfg.MultiInstance.Enabled = true
	cfg.MultiInstance.ReservePreemptions = true
	cfg.MultiInstance.InstanceID = "s1"
	s := newTestScheduler(t, cfg, Options{Client: client, Ledger: ledger, Clock: clocktesting.NewFakeClock(time.Unix(1_000_000, 0))})
	s.OnNodeAdd(st.Node("a").Obj())
	s.OnPodAdd(a1)
	s.OnPodAdd(p1)
	drain(t, s)
	if len(ledger.Entries("a")) != 1 {
		t.Fatalf("ledger of a = %+v, want p1's reservation", ledger.Entries("a"))
	}
	// A new node with room appears before the victim is gone: p1 goes
	// there, and its reservation on a is released.
	s.OnNodeAdd(st.Node("b").Obj())
	s.queue.Activate(p1.UID) // the clock does not move: no backoff to wait
	drain(t, s)
	if got := b.snapshot()["default/p1"]; got != "b" {
		t.Fatalf("p1 bound to %q, want b", got)
	}
	if e := ledger.Entries("a"); len(e) != 0 {
		t.Fatalf("ledger of a = %+v, want the reservation released", e)
	}
}

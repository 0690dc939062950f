package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
	"github.com/keelson-dev/keelson/internal/scheduler/validate"
)

// TestSharesNeverOvercommitAcrossMembershipChange runs instances with
// shares (multiInstance.shareFraction) whose caches never see each
// other's bindings, and changes the membership mid-run: one instance
// leaves and a new one joins (seeing, as an informer's first list would,
// the pods bound so far). Claims and share placements together must keep
// every node within its capacity, and both paths must have been used.
func TestSharesNeverOvercommitAcrossMembershipChange(t *testing.T) {
	const nodes, milliPerNode, podMilli = 4, 10000, 500
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var nodeList []*v1.Node
	for n := range nodes {
		nodeList = append(nodeList, st.Node(fmt.Sprintf("n%d", n)).Cap("cpu", fmt.Sprintf("%dm", milliPerNode), "memory", "64Gi", "pods", "110").Obj())
	}
	mkPods := func(prefix string, n int) []*v1.Pod {
		var out []*v1.Pod
		for i := range n {
			out = append(out, st.Pod(fmt.Sprintf("%s%02d", prefix, i)).Req("cpu", fmt.Sprintf("%dm", podMilli)).Obj())
		}
		return out
	}
	first, second := mkPods("a", 40), mkPods("b", 60)
	var objs []runtime.Object
	for _, p := range first {
		objs = append(objs, p)
	}
	client, b := newFakeClient(t, objs...)
	ledger := NewMemoryLedger()
	cfg := testConfig()
	cfg.MultiInstance.Enabled = true
	cfg.MultiInstance.Partition = true
	cfg.MultiInstance.ShareFraction = 0.2
	cfg.MultiInstance.MemberLeaseDuration = metav1.Duration{Duration: 6 * time.Second}
	type inst struct {
		s      *Scheduler
		cancel context.CancelFunc
	}
	start := func(id string, pods []*v1.Pod) inst {
		c := cfg
		c.MultiInstance.InstanceID = id
		s := newTestScheduler(t, c, Options{Client: client, Ledger: ledger})
		for _, n := range nodeList {
			s.OnNodeAdd(n)
		}
		mctx, mcancel := context.WithCancel(ctx)
		if err := s.members.Start(mctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			s.OnPodAdd(p)
		}
		return inst{s: s, cancel: mcancel}
	}
	ready := func(is ...inst) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			for _, i := range is {
				if len(i.s.members.Live()) != len(is) || !i.s.members.ShareReady() {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			for _, i := range is {
				t.Logf("%s: live %v, share ready %v", i.s.instanceID, i.s.members.Live(), i.s.members.ShareReady())
			}
			t.Fatal("instances did not all see each other and publish their reserves")
		}
		for _, i := range is {
			i.s.queue.Reassign()
		}
	}
	drainAll := func(is ...inst) {
		var wg sync.WaitGroup
		for _, i := range is {
			wg.Go(func() { drain(t, i.s) })
		}
		wg.Wait()
	}
	a, bb, c := start("sa", first), start("sb", first), start("sc", first)
	ready(a, bb, c)
	drainAll(a, bb, c)

	// c leaves once its bindings are done; d joins and lists what is bound
	// now (its informer's first list). a and b never see c's pods.
	c.s.members.Release()
	c.cancel()
	for _, p := range second {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var now []*v1.Pod
	for i := range list.Items {
		now = append(now, &list.Items[i])
	}
	d := start("sd", now)
	for _, p := range second {
		a.s.OnPodAdd(p)
		bb.s.OnPodAdd(p)
	}
	ready(a, bb, d)
	drainAll(a, bb, d)

	perNode := map[string]int{}
	for _, n := range b.snapshot() {
		perNode[n] += podMilli
	}
	for n, m := range perNode {
		if m > milliPerNode {
			t.Errorf("node %s holds %dm of %dm", n, m, milliPerNode)
		}
	}
	final, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var placed []*v1.Pod
	shared := map[string]int{}
	for i := range final.Items {
		p := &final.Items[i]
		placed = append(placed, p)
		if p.Spec.NodeName != "" {
			shared[p.Annotations[ShareOfAnnotation]]++
		}
	}
	if v := validate.Check(nodeList, placed, nil); len(v) > 0 {
		t.Errorf("placement validator: %v", v)
	}
	// "" counts claimed pods.
	for _, id := range []string{"sa", "sb", "sc", "sd", ""} {
		if shared[id] == 0 {
			t.Errorf("no pod bound by %q (in its share; \"\": with a claim): %v", id, shared)
		}
	}
	t.Logf("bound per node (milli-CPU): %v; by share holder: %v", perNode, shared)
}

// TestShareOpensOnlyOnceClaimsReserveIt: an instance's share stays closed
// while another live member has not published that its claims reserve
// it, and that member does not publish it while a claim it began before
// seeing the newcomer is still in flight.
func TestShareOpensOnlyOnceClaimsReserveIt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := fake.NewClientset()
	start := func(id string) *Members {
		m := NewMembers(MembersOptions{Client: client, Namespace: "kube-system", Self: id, Profiles: []string{"keelson"},
			LeaseDuration: 6 * time.Second, ShareFraction: 0.2})
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	reserves := func(id string) string {
		l, err := client.CoordinationV1().Leases("kube-system").Get(ctx, MemberLeaseName(id), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Annotations[MemberReservesAnnotation]
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return cond(), nil
		}); err != nil {
			t.Fatalf("waiting for %s", what)
		}
	}
	b := start("sb")
	if !b.ShareReady() {
		t.Fatal("an instance alone does not need anyone's reservation")
	}
	v := b.BeginClaim() // a claim checked before b knows of a
	a := start("sa")
	poll("both see each other", func() bool { return len(a.Live()) == 2 && len(b.Live()) == 2 })
	// a publishes at once that it reserves b; b must not list a yet.
	poll("a reserving b", func() bool { return reserves("sa") == "sb" })
	if r := reserves("sb"); r != "" {
		t.Fatalf("b lists %q as reserved while a claim begun before it saw a is in flight", r)
	}
	if a.ShareReady() {
		t.Fatal("a's share opened before b's claims reserve it")
	}
	poll("b's share open (a reserves it)", b.ShareReady)
	b.EndClaim(v)
	poll("b reserving a", func() bool { return reserves("sb") == "sa" })
	poll("a's share open", a.ShareReady)
	// a's claims leave both shares free.
	if h := a.ShareHolders(); len(h) != 2 {
		t.Fatalf("a's share holders %v, want sa and sb", h)
	}
}

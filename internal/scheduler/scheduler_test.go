package scheduler

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
	"github.com/keelson-dev/keelson/internal/scheduler/validate"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// binder records bindings made through a fake client: the first binding
// of a pod wins, later ones fail with Conflict as the API server does.
type binder struct {
	mu    sync.Mutex
	bound map[string]string // ns/name -> node
}

func newFakeClient(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *binder) {
	t.Helper()
	client := fake.NewClientset(objs...)
	b := &binder{bound: map[string]string{}}
	client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "binding" {
			return false, nil, nil
		}
		bnd := a.(clienttesting.CreateAction).GetObject().(*v1.Binding)
		b.mu.Lock()
		defer b.mu.Unlock()
		key := bnd.Namespace + "/" + bnd.Name
		if _, done := b.bound[key]; done {
			return true, nil, apierrors.NewConflict(podsGVR.GroupResource(), bnd.Name, fmt.Errorf("pod is already assigned"))
		}
		obj, err := client.Tracker().Get(podsGVR, bnd.Namespace, bnd.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		pod.Spec.NodeName = bnd.Target.Name
		// The API server copies the Binding's annotations onto the pod.
		for k, v := range bnd.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		if err := client.Tracker().Update(podsGVR, pod, pod.Namespace); err != nil {
			return true, nil, err
		}
		b.bound[key] = bnd.Target.Name
		return true, bnd, nil
	})
	return client, b
}

func (b *binder) snapshot() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for k, v := range b.bound {
		out[k] = v
	}
	return out
}

func testConfig() Config {
	cfg := Default()
	cfg.MultiInstance.Enabled = false
	cfg.Parallelism = 2
	return cfg
}

func newTestScheduler(t *testing.T, cfg Config, opts Options) *Scheduler {
	t.Helper()
	if opts.Recorder == nil {
		opts.Recorder = record.NewFakeRecorder(1000)
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// drain schedules until the active queue is empty and bindings are done.
func drain(t *testing.T, s *Scheduler) {
	t.Helper()
	for {
		if a, _, _, _ := s.queue.Lengths(); a == 0 {
			break
		}
		if err := s.ScheduleOne(t.Context()); err != nil {
			t.Fatalf("ScheduleOne: %v", err)
		}
	}
	s.WaitForBindings()
}

func TestScheduleBindsFeasibleNode(t *testing.T) {
	nodes := []*v1.Node{
		st.Node("small").Cap("cpu", "1", "memory", "1Gi", "pods", "10").Obj(),
		st.Node("big").Cap("cpu", "8", "memory", "8Gi", "pods", "10").Obj(),
		st.Node("tainted").Cap("cpu", "8", "memory", "8Gi", "pods", "10").Taint("k", "v", v1.TaintEffectNoSchedule).Obj(),
	}
	pods := []*v1.Pod{
		st.Pod("needs-2cpu").Req("cpu", "2").Obj(),
		st.Pod("selects-small").NodeSelector(v1.LabelHostname, "small").Obj(),
		st.Pod("other-scheduler").SchedulerName("default-scheduler").Obj(),
	}
	var objs []runtime.Object
	for _, p := range pods {
		objs = append(objs, p)
	}
	client, b := newFakeClient(t, objs...)
	s := newTestScheduler(t, testConfig(), Options{Client: client})
	for _, n := range nodes {
		s.OnNodeAdd(n)
	}
	for _, p := range pods {
		s.OnPodAdd(p)
	}
	drain(t, s)
	want := map[string]string{"default/needs-2cpu": "big", "default/selects-small": "small"}
	got := b.snapshot()
	if len(got) != len(want) {
		t.Fatalf("bindings = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s bound to %q, want %q", k, got[k], v)
		}
	}
}

func TestUnschedulablePodGetsCondition(t *testing.T) {
	pod := st.Pod("huge").Req("cpu", "64").Obj()
	client, _ := newFakeClient(t, pod)
	rec := record.NewFakeRecorder(10)
	s := newTestScheduler(t, testConfig(), Options{Client: client, Recorder: rec})
	s.OnNodeAdd(st.Node("a").Obj())
	s.OnNodeAdd(st.Node("b").Obj())
	s.OnNodeAdd(st.Node("c").Taint("dedicated", "db", v1.TaintEffectNoSchedule).Obj())
	s.OnPodAdd(pod)
	drain(t, s)

	got, err := client.CoreV1().Pods("default").Get(t.Context(), "huge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := podScheduledCondition(got)
	want := "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}. Preemption is not helpful for scheduling."
	if c == nil || c.Status != v1.ConditionFalse || c.Reason != v1.PodReasonUnschedulable || c.Message != want {
		t.Fatalf("condition = %+v, want Unschedulable %q", c, want)
	}
	if ev := <-rec.Events; !strings.Contains(ev, "FailedScheduling") || !strings.Contains(ev, "Insufficient cpu") {
		t.Fatalf("event = %q", ev)
	}
	if _, _, u, _ := s.queue.Lengths(); u != 1 {
		t.Fatalf("unschedulable queue has %d pods, want 1", u)
	}
	// A node with room is an event noderesourcesfit cares about.
	s.OnNodeAdd(st.Node("d").Cap("cpu", "128", "memory", "1Ti", "pods", "110").Obj())
	if a, b, _, _ := s.queue.Lengths(); a+b != 1 {
		t.Fatalf("pod not moved out of unschedulable on node add")
	}
}

// TestInstancesNeverOvercommit runs three schedulers whose caches never
// see each other's bindings (the worst case of informer lag); the shared
// ledger alone must keep every node within its capacity.
func TestInstancesNeverOvercommit(t *testing.T) {
	const nodes, podsPerNodeFit, pods = 4, 4, 30
	var objs []runtime.Object
	var podList []*v1.Pod
	for i := range pods {
		p := st.Pod(fmt.Sprintf("p%02d", i)).Req("cpu", "1").Obj()
		podList = append(podList, p)
		objs = append(objs, p)
	}
	client, b := newFakeClient(t, objs...)
	ledger := NewMemoryLedger()
	cfg := testConfig()
	cfg.MultiInstance.Enabled = true
	var nodeList []*v1.Node
	for n := range nodes {
		nodeList = append(nodeList, st.Node(fmt.Sprintf("n%d", n)).Cap("cpu", fmt.Sprint(podsPerNodeFit), "memory", "64Gi", "pods", "110").Obj())
	}
	var scheds []*Scheduler
	for i := range 3 {
		cfg.MultiInstance.InstanceID = fmt.Sprintf("s%d", i)
		s := newTestScheduler(t, cfg, Options{Client: client, Ledger: ledger})
		for _, n := range nodeList {
			s.OnNodeAdd(n)
		}
		for _, p := range podList {
			s.OnPodAdd(p)
		}
		scheds = append(scheds, s)
	}
	var wg sync.WaitGroup
	for _, s := range scheds {
		wg.Go(func() { drain(t, s) })
	}
	wg.Wait()
	perNode := map[string]int{}
	for _, n := range b.snapshot() {
		perNode[n]++
	}
	total := 0
	for n, c := range perNode {
		total += c
		if c > podsPerNodeFit {
			t.Errorf("node %s got %d one-cpu pods, capacity %d", n, c, podsPerNodeFit)
		}
	}
	if total == 0 {
		t.Fatal("nothing was bound")
	}
	final, err := client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var placed []*v1.Pod
	for i := range final.Items {
		placed = append(placed, &final.Items[i])
	}
	if v := validate.Check(nodeList, placed, nil); len(v) > 0 {
		t.Errorf("placement validator: %v", v)
	}
	t.Logf("bound %d pods: %v", total, perNode)
}

func TestSelectHostPicksMaximum(t *testing.T) {
	for range 20 {
		got := selectHost([]framework.NodeScore{{Name: "a", Score: 5}, {Name: "b", Score: 9}, {Name: "c", Score: 9}, {Name: "d", Score: 1}})
		if got != "b" && got != "c" {
			t.Fatalf("selectHost = %s, want b or c", got)
		}
	}
}

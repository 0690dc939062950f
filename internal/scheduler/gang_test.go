package scheduler

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

func podGroup(ns, name string, minMember, timeout int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gang.Group + "/" + gang.Version,
		"kind":       gang.Kind,
		"metadata":   map[string]any{"namespace": ns, "name": name},
		"spec":       map[string]any{"minMember": minMember, "scheduleTimeoutSeconds": timeout},
	}}
	return u
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gang.GVR: "PodGroupList"}, objs...)
}

func gangMember(name, group, cpu string) *v1.Pod {
	return st.Pod(name).Label(gang.LabelPodGroup, group).Req("cpu", cpu).Obj()
}

func waiting(s *Scheduler) int {
	n := 0
	s.profiles[DefaultSchedulerName].IterateOverWaitingPods(func(framework.WaitingPod) { n++ })
	return n
}

func TestGang(t *testing.T) {
	for _, tc := range []struct {
		name      string
		groups    []runtime.Object
		members   int
		nodes     int // 4-CPU nodes; members ask 3 CPUs, one fits per node
		wantBound int
	}{
		{"whole group fits", []runtime.Object{podGroup("default", "g", 3, 60)}, 3, 3, 3},
		{"one member short of room: nothing bound", []runtime.Object{podGroup("default", "g", 3, 60)}, 3, 2, 0},
		{"minMember below group size", []runtime.Object{podGroup("default", "g", 2, 60)}, 3, 2, 2},
		{"no PodGroup object", nil, 3, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pods []*v1.Pod
			var objs []runtime.Object
			for i := range tc.members {
				p := gangMember(fmt.Sprintf("m%d", i), "g", "3")
				pods = append(pods, p)
				objs = append(objs, p)
			}
			client, b := newFakeClient(t, objs...)
			s := newTestScheduler(t, testConfig(), Options{Client: client, Dynamic: newDynamic(tc.groups...)})
			for i := range tc.nodes {
				s.OnNodeAdd(st.Node(fmt.Sprintf("n%d", i)).Obj())
			}
			for _, p := range pods {
				s.OnPodAdd(p)
			}
			// Schedule members one by one: none may bind before the
			// group is complete.
			for i := range tc.members {
				if err := s.ScheduleOne(t.Context()); err != nil {
					t.Fatal(err)
				}
				if i < tc.members-1 && len(b.snapshot()) > 0 && tc.wantBound == tc.members {
					t.Fatalf("bound %v after %d of %d members", b.snapshot(), i+1, tc.members)
				}
			}
			s.WaitForBindings()
			if got := len(b.snapshot()); got != tc.wantBound {
				t.Fatalf("bound %d pods (%v), want %d", got, b.snapshot(), tc.wantBound)
			}
			if w := waiting(s); w != 0 {
				t.Errorf("%d members still waiting", w)
			}
			// Nothing left holding resources: only bound pods are in the
			// cache.
			for i := range tc.nodes {
				ni, _ := s.cache.NodeInfo(fmt.Sprintf("n%d", i))
				for _, p := range ni.Pods {
					if s.cache.IsAssumed(p.UID()) {
						if _, bound := b.snapshot()["default/"+p.Pod.Name]; !bound {
							t.Errorf("pod %s still assumed on %s", p.Pod.Name, ni.Name())
						}
					}
				}
			}
		})
	}
}

// TestGangHeldUntilComplete checks that held members are not bound while
// the group is incomplete and are released when a member fits nowhere.
func TestGangHeldUntilComplete(t *testing.T) {
	pods := []*v1.Pod{gangMember("a", "g", "3"), gangMember("b", "g", "3"), gangMember("c", "g", "3")}
	var objs []runtime.Object
	for _, p := range pods {
		objs = append(objs, p)
	}
	client, b := newFakeClient(t, objs...)
	s := newTestScheduler(t, testConfig(), Options{Client: client, Dynamic: newDynamic(podGroup("default", "g", 3, 60))})
	s.OnNodeAdd(st.Node("n0").Obj())
	s.OnNodeAdd(st.Node("n1").Obj())
	s.OnPodAdd(pods[0])
	s.OnPodAdd(pods[1])
	for range 2 {
		if err := s.ScheduleOne(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if w := waiting(s); w != 2 {
		t.Fatalf("%d members held, want 2", w)
	}
	if got := b.snapshot(); len(got) != 0 {
		t.Fatalf("bound before the group was complete: %v", got)
	}
	_, pods0 := s.cache.Counts()
	if pods0 != 2 {
		t.Fatalf("cache holds %d pods, want the 2 held members", pods0)
	}
	// The third member fits nowhere: the held ones are released.
	s.OnPodAdd(pods[2])
	if err := s.ScheduleOne(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.WaitForBindings()
	if got := b.snapshot(); len(got) != 0 {
		t.Fatalf("bound %v", got)
	}
	if _, n := s.cache.Counts(); n != 0 {
		t.Fatalf("cache still holds %d pods after release", n)
	}
}

// BenchmarkGang1000 places a 1,000-pod gang on 5,000 nodes holding
// 50,000 pods: 1,000 scheduling cycles, the last releasing every held
// member, and the bindings (fake client, no network).
func BenchmarkGang1000(b *testing.B) {
	const members = 1000
	cfg := testConfig()
	client := fake.NewClientset()
	client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	client.PrependReactor("patch", "pods", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	s, err := New(cfg, Options{Client: client, Dynamic: newDynamic(podGroup("default", "big", members, 600)), Recorder: &record.FakeRecorder{}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchNodes {
		s.cache.AddNode(st.Node(fmt.Sprintf("node-%d", i)).Cap("cpu", "64", "memory", "256Gi", "pods", "110").Label(zoneKey, fmt.Sprintf("zone-%d", i%benchZones)).Obj())
	}
	for i := range benchPods {
		p := plainPod(i).Node(fmt.Sprintf("node-%d", i%benchNodes)).UID(fmt.Sprintf("existing-%d", i)).Obj()
		s.cache.AddPod(p)
	}
	round := 0
	cpu0 := cpuTime()
	for b.Loop() {
		for i := range members {
			p := plainPod(i).Label(gang.LabelPodGroup, "big").Name(fmt.Sprintf("g%d-%d", round, i)).UID(fmt.Sprintf("g%d-%d", round, i)).Obj()
			s.OnPodAdd(p)
		}
		for range members {
			if err := s.ScheduleOne(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		s.WaitForBindings()
		b.StopTimer()
		if w := waiting(s); w != 0 {
			b.Fatalf("%d members still waiting", w)
		}
		// Remove the gang so that every round starts from the same cluster.
		for i := range members {
			uid := fmt.Sprintf("g%d-%d", round, i)
			s.cache.RemovePod(st.Pod(uid).UID(uid).Obj())
			s.mu.Lock()
			delete(s.pending, st.Pod(uid).UID(uid).Obj().UID)
			s.mu.Unlock()
		}
		round++
		b.StartTimer()
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/gang")
}

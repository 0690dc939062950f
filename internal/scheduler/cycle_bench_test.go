package scheduler

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// Workloads named after kube-scheduler's scheduler_perf, at 5,000 nodes
// (50 zones) holding 50,000 existing pods. Each iteration is one whole
// scheduling cycle (snapshot update, PreFilter, Filter on every node,
// Score on every feasible node, assume) of one new pod; the pod is then
// forgotten so the cluster stays the same size.
const (
	benchNodes = 5000
	benchPods  = 50000
	benchZones = 50
)

const zoneKey = "topology.kubernetes.io/zone"

func benchCluster(b *testing.B, existing func(i int, node string) *v1.Pod) (*Scheduler, *framework.Framework) {
	return benchClusterOf(b, benchZones, benchPods, existing)
}

// benchClusterOf is benchCluster with zones zones and pods existing pods.
func benchClusterOf(b *testing.B, zones, pods int, existing func(i int, node string) *v1.Pod) (*Scheduler, *framework.Framework) {
	b.Helper()
	cfg := testConfig()
	cfg.Parallelism = 2
	s, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range benchNodes {
		s.cache.AddNode(st.Node(fmt.Sprintf("node-%d", i)).
			Cap("cpu", "64", "memory", "256Gi", "pods", "110").
			Label(zoneKey, fmt.Sprintf("zone-%d", i%zones)).Obj())
	}
	for i := range pods {
		node := fmt.Sprintf("node-%d", i%benchNodes)
		p := existing(i, node)
		p.UID = types.UID(fmt.Sprintf("existing-%d", i))
		p.Spec.NodeName = node
		s.cache.AddPod(p)
	}
	fw := s.profiles[DefaultSchedulerName]
	s.cache.UpdateSnapshot(s.snapshot)
	return s, fw
}

func plainPod(i int) *st.PodWrapper {
	return st.Pod(fmt.Sprintf("p-%d", i)).Label("app", fmt.Sprintf("app-%d", i%500)).Req("cpu", "100m", "memory", "128Mi")
}

func runCycles(b *testing.B, s *Scheduler, fw *framework.Framework, newPod func(i int) *v1.Pod) {
	b.Helper()
	ctx := b.Context()
	i := 0
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		pod := newPod(i)
		pod.UID = types.UID(fmt.Sprintf("new-%d", i))
		i++
		pi := framework.NewPodInfo(pod)
		s.cache.UpdateSnapshot(s.snapshot)
		fw.SetSnapshot(s.snapshot)
		host, _, err := s.schedulePod(ctx, fw, framework.NewCycleState(), pi)
		if err != nil {
			b.Fatalf("pod %d: %v", i, err)
		}
		assumed := *pi
		assumed.Pod = pod.DeepCopy()
		assumed.Pod.Spec.NodeName = host
		if err := s.cache.AssumePod(&assumed, host); err != nil {
			b.Fatal(err)
		}
		s.cache.ForgetPod(pod.UID)
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/float64(b.N), "cpu-ms/pod")
}

// cpuTime is the CPU time used by the process so far (all threads, GC
// included): on a shared machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkCycle(b *testing.B) {
	b.Run("SchedulingBasic", func(b *testing.B) {
		s, fw := benchCluster(b, func(i int, _ string) *v1.Pod { return plainPod(i).Obj() })
		runCycles(b, s, fw, func(i int) *v1.Pod { return plainPod(i).Obj() })
	})
	// One existing pod in ten belongs to a group whose members require a
	// zone shared with another member; new pods join the group.
	b.Run("SchedulingPodAffinity", func(b *testing.B) {
		affine := func(i int) *st.PodWrapper {
			return plainPod(i).Label("color", "blue").PodAffinity(st.Term(zoneKey, "color", "blue"))
		}
		s, fw := benchCluster(b, func(i int, _ string) *v1.Pod {
			if i%10 == 0 {
				return affine(i).Obj()
			}
			return plainPod(i).Obj()
		})
		runCycles(b, s, fw, func(i int) *v1.Pod { return affine(i).Obj() })
	})
	// As upstream scheduler_perf's SchedulingPodAffinity: 10 zones, 5,000
	// existing pods (one per node, namespace "init") and new pods all
	// requiring a zone shared with a blue pod of either namespace.
	b.Run("SchedulingPodAffinityUpstream", func(b *testing.B) {
		affine := func(i int, ns string) *st.PodWrapper {
			return plainPod(i).Namespace(ns).Label("color", "blue").
				PodAffinity(st.Term(zoneKey, "color", "blue", "default", "init"))
		}
		s, fw := benchClusterOf(b, 10, benchNodes, func(i int, _ string) *v1.Pod { return affine(i, "init").Obj() })
		runCycles(b, s, fw, func(i int) *v1.Pod { return affine(i, "default").Obj() })
	})
	// Existing pods of one group (one per node on half the nodes) repel
	// each other per host; new pods are members of the group.
	anti := func(i int) *st.PodWrapper {
		return plainPod(i).Label("color", "green").PodAntiAffinity(st.Term(v1.LabelHostname, "color", "green"))
	}
	antiCluster := func(b *testing.B) (*Scheduler, *framework.Framework) {
		return benchCluster(b, func(i int, _ string) *v1.Pod {
			if i < benchNodes/2 {
				return anti(i).Obj()
			}
			return plainPod(i).Obj()
		})
	}
	b.Run("SchedulingPodAntiAffinity", func(b *testing.B) {
		s, fw := antiCluster(b)
		runCycles(b, s, fw, func(i int) *v1.Pod { return anti(i).Obj() })
	})
	// The same, new pods being replicas (one label set): the kept-results
	// path, as the per-host terms make interpodaffinity node-local.
	b.Run("SchedulingPodAntiAffinityReplicas", func(b *testing.B) {
		s, fw := antiCluster(b)
		runCycles(b, s, fw, func(i int) *v1.Pod { return anti(i).Label("app", "web").Obj() })
	})
	// New pods spread over zones (hard) and hosts (soft) among the pods
	// of their app; every existing pod belongs to one of 500 apps.
	b.Run("TopologySpreading", func(b *testing.B) {
		s, fw := benchCluster(b, func(i int, _ string) *v1.Pod { return plainPod(i).Obj() })
		runCycles(b, s, fw, func(i int) *v1.Pod {
			return plainPod(i).
				Spread(1, zoneKey, v1.DoNotSchedule, "app", fmt.Sprintf("app-%d", i%500)).
				Spread(1, v1.LabelHostname, v1.ScheduleAnyway, "app", fmt.Sprintf("app-%d", i%500)).Obj()
		})
	})
}

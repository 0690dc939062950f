package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
)

// Each workload returns the measured pods (not yet created); pods that
// must exist first (preemption victims) it creates itself, already bound.

func many(n int, ns, schedName, prefix, cpu string, mod func(*corev1.Pod)) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range out {
		p := pod(ns, fmt.Sprintf("%s-%05d", prefix, i), schedName, cpu)
		if mod != nil {
			mod(p)
		}
		out[i] = p
	}
	return out
}

func (b *bench) basic(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	return many(b.sz.basic, ns, schedName, "basic", "100m", nil), nil
}

// The two (anti-)affinity workloads follow upstream's scheduler_perf
// (k8s.io/kubernetes v1.36 test/integration/scheduler_perf/affinity,
// performance-config.yaml, templates pod-with-pod-anti-affinity.yaml and
// pod-with-pod-affinity.yaml): two namespaces, sched-0 holding the init
// pods and sched-1 the measured ones (here <run>-0 and <run>-1), the
// term naming both namespaces, the same labels and 100m / 500Mi
// requests. Upstream has its scheduler place the init pods before the
// measured pods are created; here they are created already bound, one
// per node, spread evenly over the nodes, which is the same state without
// timing a scheduler on them.

// upstreamPod is scheduler_perf's pod: 100m CPU, 500Mi, a container port
// (not a host port).
func upstreamPod(ns, name, schedName string) *corev1.Pod {
	p := pod(ns, name, schedName, "100m")
	c := &p.Spec.Containers[0]
	c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("500Mi")
	c.Resources.Limits = c.Resources.Requests.DeepCopy()
	c.Ports = []corev1.ContainerPort{{ContainerPort: 80}}
	return p
}

// initPods creates n bound pods in ns (pod i on node i*nodes/n) from
// build, labelled bench=init so that the run's informer leaves them out.
func (b *bench) initPods(ctx context.Context, ns string, n int, build func(name string) *corev1.Pod) error {
	if n == 0 {
		return nil
	}
	return parallel(ctx, n, 32, func(i int) error {
		p := build(fmt.Sprintf("init-%05d", i))
		p.Namespace = ns
		p.Labels["bench"] = "init"
		p.Spec.NodeName = fmt.Sprintf("node-%05d", i*b.sz.nodes/n)
		if _, err := b.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating init pod %s/%s: %w", ns, p.Name, err)
		}
		return nil
	})
}

// initNamespace is where a run's init pods live (upstream's sched-0).
func initNamespace(ns string) string { return ns + "-init" }

// antiAffinity: every pod repels every other (init and measured) on its
// node: one per node.
func (b *bench) antiAffinity(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	init := initNamespace(ns)
	build := func(name string) *corev1.Pod {
		p := upstreamPod(ns, name, schedName)
		p.Labels["color"] = "green"
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"color": "green"}}, TopologyKey: hostKey,
				Namespaces: []string{ns, init},
			}},
		}}
		return p
	}
	if err := b.initPods(ctx, init, b.sz.antiInit, build); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, b.sz.anti)
	for i := range out {
		out[i] = build(fmt.Sprintf("anti-%05d", i))
	}
	return out, nil
}

// affinity: every pod wants to share a zone with the others (init pods
// included).
func (b *bench) affinity(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	init := initNamespace(ns)
	build := func(name string) *corev1.Pod {
		p := upstreamPod(ns, name, schedName)
		p.Labels["color"] = "blue"
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"color": "blue"}}, TopologyKey: zoneKey,
				Namespaces: []string{ns, init},
			}},
		}}
		return p
	}
	if err := b.initPods(ctx, init, b.sz.affinityInit, build); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, b.sz.affinity)
	for i := range out {
		out[i] = build(fmt.Sprintf("aff-%05d", i))
	}
	return out, nil
}

// spreading: zones kept within 1 of each other, hostnames preferred.
func (b *bench) spreading(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	return many(b.sz.spread, ns, schedName, "spread", "100m", func(p *corev1.Pod) {
		p.Labels["app"] = "spread"
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
			{MaxSkew: 1, TopologyKey: zoneKey, WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: sel},
			{MaxSkew: 1, TopologyKey: hostKey, WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: sel},
		}
	}), nil
}

// preemption: the first nodes are filled with two low-priority 16-CPU
// pods each (created bound); each measured high-priority 16-CPU pod must
// evict one, all other nodes being cordoned off by a node selector.
func (b *bench) preemption(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	n := b.sz.preempt
	nodes := (n + 1) / 2
	err := parallel(ctx, 2*nodes, 16, func(i int) error {
		p := pod(ns, fmt.Sprintf("low-%05d", i), schedName, "16")
		p.Labels = map[string]string{"bench": "victim"}
		p.Spec.PriorityClassName = "low"
		p.Spec.NodeName = fmt.Sprintf("node-%05d", i/2)
		_, err := b.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating victims: %w", err)
	}
	var names []string
	for i := range nodes {
		names = append(names, fmt.Sprintf("node-%05d", i))
	}
	return many(n, ns, schedName, "high", "16", func(p *corev1.Pod) {
		p.Spec.PriorityClassName = "high"
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: hostKey, Operator: corev1.NodeSelectorOpIn, Values: names}},
			}}},
		}}
	}), nil
}

// saturation: pods of mixed shapes (CPU-heavy and memory-heavy) pinned
// to the saturation pool, asking for 1.25 times its CPU, in a fixed
// pseudo-random order; the run ends when each is bound or unschedulable
// and reports how much of the pool was allocated.
func (b *bench) saturation(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	shapes := []struct{ cpu, mem string }{
		{"500m", "1Gi"}, {"1", "12Gi"}, {"2", "4Gi"}, {"2", "24Gi"},
		{"4", "16Gi"}, {"250m", "4Gi"}, {"3", "30Gi"}, {"6", "40Gi"},
	}
	rng := rand.New(rand.NewPCG(4, 2))
	target := int64(b.sz.satNodes) * nodeCPU * 1000 * 5 / 4
	var out []*corev1.Pod
	for used := int64(0); used < target; {
		sh := shapes[rng.IntN(len(shapes))]
		p := pod(ns, fmt.Sprintf("sat-%05d", len(out)), schedName, sh.cpu)
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse(sh.mem)
		p.Spec.NodeSelector = map[string]string{poolKey: "saturation"}
		q := resource.MustParse(sh.cpu)
		used += q.MilliValue()
		out = append(out, p)
	}
	return out, nil
}

// gang: one PodGroup whose members must all be placed (keelson only).
func (b *bench) gang(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	return many(b.sz.gang, ns, schedName, "member", "1", func(p *corev1.Pod) {
		p.Labels[gang.LabelPodGroup] = "g"
	}), nil
}

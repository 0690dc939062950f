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

// antiAffinity: every pod repels the others on its node (one per node).
func (b *bench) antiAffinity(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	return many(b.sz.anti, ns, schedName, "anti", "100m", func(p *corev1.Pod) {
		p.Labels["color"] = "green"
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"color": "green"}}, TopologyKey: hostKey,
			}},
		}}
	}), nil
}

// affinity: every pod wants to share a zone with the others.
func (b *bench) affinity(_ context.Context, ns, schedName string) ([]*corev1.Pod, error) {
	return many(b.sz.affinity, ns, schedName, "aff", "100m", func(p *corev1.Pod) {
		p.Labels["foo"] = "bar"
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"foo": "bar"}}, TopologyKey: zoneKey,
			}},
		}}
	}), nil
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

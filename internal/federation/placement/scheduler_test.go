package placement

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

func fleet() []*ClusterInfo {
	return []*ClusterInfo{
		{Name: "a", Region: "eu", Zone: "eu-1", Ready: true, Labels: map[string]string{"env": "prod"}, HasCapacity: true, AvailablePods: 100, AvailableMilliCPU: 4000},
		{Name: "b", Region: "eu", Zone: "eu-2", Ready: true, Labels: map[string]string{"env": "prod"}, HasCapacity: true, AvailablePods: 100, AvailableMilliCPU: 2000},
		{Name: "c", Region: "us", Zone: "us-1", Ready: true, Labels: map[string]string{"env": "dev"}, HasCapacity: true, AvailablePods: 100, AvailableMilliCPU: 1000},
		{Name: "d", Region: "us", Zone: "us-2", Ready: false, HasCapacity: true, AvailablePods: 100, AvailableMilliCPU: 8000},
		{Name: "e", Region: "ap", Zone: "ap-1", Ready: true, Taints: []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}},
	}
}

func targets(r *Result) map[string]int32 {
	out := map[string]int32{}
	for _, t := range r.Targets {
		n := int32(-1)
		if t.Replicas != nil {
			n = *t.Replicas
		}
		out[t.Cluster] = n
	}
	return out
}

func TestSchedule(t *testing.T) {
	divided := func(pref v1alpha1.DivisionPreference, w ...v1alpha1.StaticWeight) *v1alpha1.ReplicaScheduling {
		return &v1alpha1.ReplicaScheduling{Type: v1alpha1.Divided, Preference: pref, StaticWeights: w}
	}
	for _, tc := range []struct {
		name      string
		req       Request
		want      map[string]int32
		wantErr   bool
		wantWhy   map[string]string // cluster → substring of its reason
		wantGroup string
	}{
		{
			name:    "no replicas, all ready untainted clusters",
			req:     Request{},
			want:    map[string]int32{"a": -1, "b": -1, "c": -1},
			wantWhy: map[string]string{"d": "not ready", "e": "taint dedicated=gpu:NoSchedule"},
		},
		{
			name: "duplicated by names",
			req: Request{HasReplicas: true, Replicas: 3, Placement: v1alpha1.Placement{
				ClusterAffinity: &v1alpha1.ClusterAffinity{ClusterNames: []string{"a", "c"}}}},
			want:    map[string]int32{"a": 3, "c": 3},
			wantWhy: map[string]string{"b": "not in clusterNames"},
		},
		{
			name: "label selector and exclude",
			req: Request{Placement: v1alpha1.Placement{ClusterAffinity: &v1alpha1.ClusterAffinity{
				LabelSelector:   &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
				ExcludeClusters: []string{"b"}}}},
			want:    map[string]int32{"a": -1},
			wantWhy: map[string]string{"b": "excluded", "c": "labels do not match"},
		},
		{
			name: "fallback group used when first has no feasible cluster",
			req: Request{Placement: v1alpha1.Placement{ClusterAffinities: []v1alpha1.ClusterAffinityTerm{
				{AffinityName: "primary", ClusterAffinity: v1alpha1.ClusterAffinity{ClusterNames: []string{"d"}}},
				{AffinityName: "backup", ClusterAffinity: v1alpha1.ClusterAffinity{ClusterNames: []string{"c"}}},
			}}},
			want:      map[string]int32{"c": -1},
			wantGroup: "backup",
		},
		{
			name: "toleration admits tainted cluster",
			req: Request{Placement: v1alpha1.Placement{
				ClusterAffinity:    &v1alpha1.ClusterAffinity{ClusterNames: []string{"e"}},
				ClusterTolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}}},
			want: map[string]int32{"e": -1},
		},
		{
			name: "unready kept while failover tolerates",
			req: Request{KeepUnready: map[string]bool{"d": true}, Placement: v1alpha1.Placement{
				ClusterAffinity: &v1alpha1.ClusterAffinity{ClusterNames: []string{"d"}}}},
			want: map[string]int32{"d": -1},
		},
		{
			name: "evicted cluster is out",
			req: Request{Evicted: map[string]bool{"a": true}, Placement: v1alpha1.Placement{
				ClusterAffinity: &v1alpha1.ClusterAffinity{ClusterNames: []string{"a", "b"}}}},
			want:    map[string]int32{"b": -1},
			wantWhy: map[string]string{"a": "evicted"},
		},
		{
			name: "divided by static weights",
			req: Request{HasReplicas: true, Replicas: 6, Placement: v1alpha1.Placement{
				ClusterAffinity: &v1alpha1.ClusterAffinity{ClusterNames: []string{"a", "b"}},
				ReplicaScheduling: divided(v1alpha1.DivideByWeight,
					v1alpha1.StaticWeight{TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{"a"}}, Weight: 2},
					v1alpha1.StaticWeight{TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{"b"}}, Weight: 1})}},
			want: map[string]int32{"a": 4, "b": 2},
		},
		{
			name: "divided by capacity",
			req: Request{HasReplicas: true, Replicas: 7, ReplicaMilliCPU: 500, Placement: v1alpha1.Placement{
				ReplicaScheduling: divided(v1alpha1.DivideByCapacity)}},
			// fit: a 8, b 4, c 2
			want: map[string]int32{"a": 4, "b": 2, "c": 1},
		},
		{
			name: "spread over one region keeps the best",
			req: Request{ReplicaMilliCPU: 100, Placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByRegion, MinGroups: 1, MaxGroups: 1}}}},
			want:    map[string]int32{"a": -1, "b": -1},
			wantWhy: map[string]string{"c": `region "us" not among the best 1`},
		},
		{
			name: "spread needs more groups than feasible",
			req: Request{Placement: v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{
				{SpreadByField: v1alpha1.SpreadByRegion, MinGroups: 3}}}},
			wantErr: true,
		},
		{
			name: "nothing feasible",
			req: Request{Placement: v1alpha1.Placement{
				ClusterAffinity: &v1alpha1.ClusterAffinity{ClusterNames: []string{"zzz"}}}},
			wantErr: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Schedule(t.Context(), &tc.req, fleet())
			if tc.wantErr {
				if !errors.Is(err, ErrNoCluster) {
					t.Fatalf("err = %v, want ErrNoCluster", err)
				}
				if len(res.Decisions) != len(fleet()) {
					t.Fatalf("decisions = %d, want one per cluster", len(res.Decisions))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := targets(res)
			if len(got) != len(tc.want) {
				t.Fatalf("targets = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("targets = %v, want %v", got, tc.want)
				}
			}
			if res.AffinityName != tc.wantGroup {
				t.Errorf("affinity group = %q, want %q", res.AffinityName, tc.wantGroup)
			}
			for _, d := range res.Decisions {
				if want, ok := tc.wantWhy[d.Cluster]; ok && !strings.Contains(d.Reason, want) {
					t.Errorf("cluster %s reason %q, want it to contain %q", d.Cluster, d.Reason, want)
				}
			}
		})
	}
}

func TestNewRejectsUnknownAndDuplicatePlugins(t *testing.T) {
	if _, err := New([]PluginConfig{{Name: "nope"}}); err == nil || !strings.Contains(err.Error(), "unknown placement plugin") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New([]PluginConfig{{Name: "capacity"}, {Name: "capacity"}}); err == nil {
		t.Fatal("duplicate accepted")
	}
}

// TestFitReplicasCountsHolding: replicas an object already runs in a
// cluster are capacity available to it, so capacity division does not
// move them away once they have used the capacity up.
func TestFitReplicasCountsHolding(t *testing.T) {
	c := &ClusterInfo{Name: "a", HasCapacity: true, AvailablePods: 10, AvailableMilliCPU: 1000, AvailableMemory: 1 << 30}
	req := &Request{ReplicaMilliCPU: 500, ReplicaMemory: 1 << 28}
	if got := FitReplicas(req, c); got != 2 {
		t.Fatalf("fit without holding = %d, want 2 (cpu-bound)", got)
	}
	req.Holding = map[string]int32{"a": 3}
	if got := FitReplicas(req, c); got != 5 {
		t.Errorf("fit holding 3 = %d, want 5 (2 free + 3 own)", got)
	}
	if got := FitReplicas(&Request{Holding: map[string]int32{"a": 3}}, &ClusterInfo{Name: "a"}); got != -1 {
		t.Errorf("unknown capacity = %d, want -1", got)
	}
}

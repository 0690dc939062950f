package placement

import (
	"context"
	"fmt"
	"testing"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// BenchmarkScheduleDivided20 is one placement decision for 100 replicas
// Divided over 20 clusters with a region spread, as bench/federation
// measures it.
func BenchmarkScheduleDivided20(b *testing.B) {
	var fleet []*ClusterInfo
	var weights []v1alpha1.StaticWeight
	for i := range 20 {
		name := fmt.Sprintf("c%02d", i)
		fleet = append(fleet, &ClusterInfo{Name: name, Region: fmt.Sprintf("r%d", i%4), Ready: true, HasCapacity: true,
			AvailableMilliCPU: int64(16000 + 1000*i), AvailableMemory: int64(64+i) << 30, AvailablePods: 1100})
		weights = append(weights, v1alpha1.StaticWeight{TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{name}}, Weight: int64(1 + i%3)})
	}
	s, err := New(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rs   *v1alpha1.ReplicaScheduling
	}{
		{"weighted", &v1alpha1.ReplicaScheduling{Type: v1alpha1.Divided, Preference: v1alpha1.DivideByWeight, StaticWeights: weights}},
		{"capacity", &v1alpha1.ReplicaScheduling{Type: v1alpha1.Divided, Preference: v1alpha1.DivideByCapacity}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pl := v1alpha1.Placement{SpreadConstraints: []v1alpha1.SpreadConstraint{{SpreadByField: "region", MinGroups: 1}}, ReplicaScheduling: tc.rs}
			for b.Loop() {
				req := &Request{Placement: pl, HasReplicas: true, Replicas: 100, ReplicaMilliCPU: 100, ReplicaMemory: 128 << 20,
					Previous: map[string]bool{"c01": true}, KeepUnready: map[string]bool{}, Evicted: map[string]bool{}}
				if _, err := s.Schedule(context.Background(), req, fleet); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

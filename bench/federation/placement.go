package main

import (
	"context"
	"fmt"
	"time"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// placementResult is one in-process placement measurement.
type placementResult struct {
	name      string
	clusters  int
	decisions int
	perSec    float64
}

// placementFleet is 20 ready clusters over 4 regions with capacity.
func placementFleet() []*placement.ClusterInfo {
	var out []*placement.ClusterInfo
	for i := range 20 {
		out = append(out, &placement.ClusterInfo{
			Name: fmt.Sprintf("c%02d", i), Region: fmt.Sprintf("region-%d", i%4), Zone: fmt.Sprintf("zone-%d", i%8),
			Labels: map[string]string{"env": "prod"}, Ready: true, HasCapacity: true,
			AvailableMilliCPU: int64(16000 + 1000*i), AvailableMemory: int64(64+i) << 30, AvailablePods: 1100,
		})
	}
	return out
}

// measurePlacement runs the default placement plugins on one goroutine
// for a Divided Deployment of 100 replicas over 20 clusters.
func measurePlacement(secs float64) ([]placementResult, error) {
	fleet := placementFleet()
	var weights []v1alpha1.StaticWeight
	for i, c := range fleet {
		weights = append(weights, v1alpha1.StaticWeight{TargetCluster: v1alpha1.ClusterAffinity{ClusterNames: []string{c.Name}}, Weight: int64(1 + i%3)})
	}
	cases := []struct {
		name string
		rs   *v1alpha1.ReplicaScheduling
	}{
		{"Divided, static weights", &v1alpha1.ReplicaScheduling{Type: v1alpha1.Divided, Preference: v1alpha1.DivideByWeight, StaticWeights: weights}},
		{"Divided, available capacity", &v1alpha1.ReplicaScheduling{Type: v1alpha1.Divided, Preference: v1alpha1.DivideByCapacity}},
	}
	s, err := placement.New(nil)
	if err != nil {
		return nil, err
	}
	var out []placementResult
	for _, c := range cases {
		pl := v1alpha1.Placement{
			ClusterAffinity:   &v1alpha1.ClusterAffinity{LabelSelector: nil},
			SpreadConstraints: []v1alpha1.SpreadConstraint{{SpreadByField: "region", MinGroups: 1}},
			ReplicaScheduling: c.rs,
		}
		n := 0
		start := time.Now()
		deadline := start.Add(time.Duration(secs * float64(time.Second)))
		for time.Now().Before(deadline) {
			for range 100 {
				req := &placement.Request{Placement: pl, HasReplicas: true, Replicas: 100, ReplicaMilliCPU: 100, ReplicaMemory: 128 << 20,
					Previous: map[string]bool{"c01": true}, KeepUnready: map[string]bool{}, Evicted: map[string]bool{}}
				if _, err := s.Schedule(context.Background(), req, fleet); err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
				n++
			}
		}
		el := time.Since(start)
		out = append(out, placementResult{name: c.name, clusters: len(fleet), decisions: n, perSec: float64(n) / el.Seconds()})
	}
	return out, nil
}

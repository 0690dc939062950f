package v1alpha1

import (
	"testing"
)

func TestCRDsDecode(t *testing.T) {
	crds, err := CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"clusters." + Group:                   true,
		"propagationpolicies." + Group:        true,
		"clusterpropagationpolicies." + Group: true,
		"overridepolicies." + Group:           true,
		"clusteroverridepolicies." + Group:    true,
	}
	for _, c := range crds {
		if !want[c.GetName()] {
			t.Errorf("unexpected CRD %q", c.GetName())
		}
		delete(want, c.GetName())
		// YAML anchors must be resolved into real schemas.
		versions, _, _ := unstructuredSlice(c.Object, "spec", "versions")
		if len(versions) != 1 {
			t.Errorf("%s: %d versions", c.GetName(), len(versions))
		}
	}
	if len(want) != 0 {
		t.Errorf("missing CRDs: %v", want)
	}
}

func unstructuredSlice(m map[string]any, path ...string) ([]any, bool, error) {
	cur := any(m)
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = mm[p]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}

func TestPolicyRoundTrip(t *testing.T) {
	in := map[string]any{
		"apiVersion": "federation.keelson.dev/v1alpha1",
		"kind":       "PropagationPolicy",
		"metadata":   map[string]any{"name": "p", "namespace": "ns"},
		"spec": map[string]any{
			"resourceSelectors": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}},
			"placement": map[string]any{
				"clusterAffinities": []any{map[string]any{"affinityName": "primary", "clusterNames": []any{"a"}}},
				"replicaScheduling": map[string]any{"type": "Divided", "divisionPreference": "Weighted",
					"staticWeights": []any{map[string]any{"targetCluster": map[string]any{"clusterNames": []any{"a"}}, "weight": int64(2)}}},
			},
			"failover": map[string]any{"tolerationSeconds": int64(30), "rebalance": true},
		},
	}
	var p PropagationPolicy
	if err := FromUnstructured(in, &p); err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Placement.ClusterAffinities[0]; got.AffinityName != "primary" || got.ClusterNames[0] != "a" {
		t.Fatalf("affinity term = %+v", got)
	}
	if w := p.Spec.Placement.ReplicaScheduling.StaticWeights[0].Weight; w != 2 {
		t.Fatalf("weight = %d", w)
	}
	if p.Spec.Failover == nil || *p.Spec.Failover.TolerationSeconds != 30 || !p.Spec.Failover.Rebalance {
		t.Fatalf("failover = %+v", p.Spec.Failover)
	}
}

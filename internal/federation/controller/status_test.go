package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

func memberDeploy(hash string, gen, observed, replicas, ready int64, available bool) *unstructured.Unstructured {
	avail := "False"
	if available {
		avail = "True"
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "generation": gen, "annotations": map[string]any{v1alpha1.AnnotationHash: hash}},
		"status": map[string]any{"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
			"updatedReplicas": replicas, "availableReplicas": ready,
			"conditions": []any{map[string]any{"type": "Available", "status": avail}}},
	}}
	return u
}

func TestAggregateStatus(t *testing.T) {
	host := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "generation": int64(5)},
		"status":   map[string]any{"observedGeneration": int64(4)},
	}}
	for _, tc := range []struct {
		name      string
		members   []MemberObject
		observed  int64
		replicas  int64
		ready     int64
		available string
	}{
		{"all current", []MemberObject{
			{Cluster: "a", Hash: "h1", Obj: memberDeploy("h1", 2, 2, 4, 4, true)},
			{Cluster: "b", Hash: "h2", Obj: memberDeploy("h2", 7, 7, 2, 1, true)},
		}, 5, 6, 5, "True"},
		{"one member has an old rendering", []MemberObject{
			{Cluster: "a", Hash: "h1", Obj: memberDeploy("old", 2, 2, 4, 4, true)},
			{Cluster: "b", Hash: "h2", Obj: memberDeploy("h2", 7, 7, 2, 2, true)},
		}, 4, 6, 6, "True"},
		{"one member not observed yet", []MemberObject{
			{Cluster: "a", Hash: "h1", Obj: memberDeploy("h1", 3, 2, 4, 4, true)},
		}, 4, 4, 4, "True"},
		{"one member missing", []MemberObject{
			{Cluster: "a", Hash: "h1", Obj: memberDeploy("h1", 2, 2, 4, 4, true)},
			{Cluster: "b", Hash: "h2"},
		}, 4, 4, 4, "False"},
		{"one member unavailable", []MemberObject{
			{Cluster: "a", Hash: "h1", Obj: memberDeploy("h1", 2, 2, 4, 0, false)},
		}, 5, 4, 0, "False"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := AggregateStatus(host, tc.members)
			if st["observedGeneration"] != tc.observed || st["replicas"] != tc.replicas || st["readyReplicas"] != tc.ready {
				t.Fatalf("status = %v; want observedGeneration %d replicas %d ready %d", st, tc.observed, tc.replicas, tc.ready)
			}
			conds := st["conditions"].([]any)
			if got := conds[0].(map[string]any)["status"]; got != tc.available {
				t.Fatalf("Available = %v, want %s", got, tc.available)
			}
		})
	}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}
	if st := AggregateStatus(cm, nil); st != nil {
		t.Fatalf("ConfigMap status = %v, want nil", st)
	}
}

// TestStatusEqualZeroCounters: the apiserver drops zero counters from a
// workload's status, so a status read back without them equals the one
// written with them, and a real change still differs.
func TestStatusEqualZeroCounters(t *testing.T) {
	conds := []any{map[string]any{"type": "Available", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}}
	want := map[string]any{"observedGeneration": int64(0), "replicas": int64(0), "readyReplicas": int64(0), "conditions": conds}
	for _, tc := range []struct {
		name string
		cur  map[string]any
		eq   bool
	}{
		{"read back without zeros", map[string]any{"conditions": conds}, true},
		{"read back with zeros", map[string]any{"observedGeneration": int64(0), "replicas": int64(0), "readyReplicas": int64(0), "conditions": conds}, true},
		{"a counter differs", map[string]any{"replicas": int64(2), "conditions": conds}, false},
		{"conditions missing", map[string]any{}, false},
		{"extra fields of the server ignored", map[string]any{"conditions": conds, "collisionCount": int64(1)}, true},
	} {
		if got := statusEqual(tc.cur, want); got != tc.eq {
			t.Errorf("%s: statusEqual = %v, want %v", tc.name, got, tc.eq)
		}
	}
}

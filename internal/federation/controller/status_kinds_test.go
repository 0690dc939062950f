package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

func memberJob(cluster string, status map[string]any) MemberObject {
	return MemberObject{Cluster: cluster, Hash: "h", Obj: &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": "j", "annotations": map[string]any{v1alpha1.AnnotationHash: "h"}},
		"status":   status,
	}}}
}

func cond(typ string) map[string]any { return map[string]any{"type": typ, "status": "True"} }

func TestAggregateJob(t *testing.T) {
	host := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": "j"}, "status": status}}
	}
	done := func(start, end string) map[string]any {
		return map[string]any{"succeeded": int64(2), "startTime": start, "completionTime": end,
			"conditions": []any{cond("SuccessCriteriaMet"), cond("Complete")}}
	}
	running := map[string]any{"active": int64(2), "ready": int64(1), "startTime": "2026-01-01T00:00:05Z"}

	// One member still running: counters summed, not complete.
	s := AggregateStatus(host(nil), []MemberObject{memberJob("a", done("2026-01-01T00:00:10Z", "2026-01-01T00:01:00Z")), memberJob("b", running)})
	if s["active"] != int64(2) || s["ready"] != int64(1) || s["succeeded"] != int64(2) || s["startTime"] != "2026-01-01T00:00:05Z" || s["conditions"] != nil {
		t.Fatalf("running: %v", s)
	}
	// Both complete: Complete with SuccessCriteriaMet, last completion.
	s = AggregateStatus(host(map[string]any{"startTime": "2026-01-01T00:00:05Z"}), []MemberObject{
		memberJob("a", done("2026-01-01T00:00:10Z", "2026-01-01T00:01:00Z")), memberJob("b", done("2026-01-01T00:00:05Z", "2026-01-01T00:02:00Z"))})
	if !hasTrue(s, "Complete") || !hasTrue(s, "SuccessCriteriaMet") || s["completionTime"] != "2026-01-01T00:02:00Z" || s["succeeded"] != int64(4) {
		t.Fatalf("complete: %v", s)
	}
	// A member failed: Failed with FailureTarget, naming it.
	failed := map[string]any{"failed": int64(1), "startTime": "2026-01-01T00:00:05Z",
		"conditions": []any{cond("FailureTarget"), map[string]any{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}}}
	s = AggregateStatus(host(nil), []MemberObject{memberJob("a", done("2026-01-01T00:00:10Z", "2026-01-01T00:01:00Z")), memberJob("b", failed)})
	if !hasTrue(s, "Failed") || !hasTrue(s, "FailureTarget") || hasTrue(s, "Complete") {
		t.Fatalf("failed: %v", s)
	}
	// A terminal condition stays although a member copy is gone.
	prev := AggregateStatus(host(map[string]any{"startTime": "2026-01-01T00:00:05Z"}), []MemberObject{memberJob("a", done("2026-01-01T00:00:05Z", "2026-01-01T00:01:00Z"))})
	s = AggregateStatus(host(prev), []MemberObject{{Cluster: "a", Hash: "h"}})
	if !hasTrue(s, "Complete") || s["completionTime"] != "2026-01-01T00:01:00Z" {
		t.Fatalf("terminal lost: %v", s)
	}
	// Counters never go down (the API rejects it) when a member leaves.
	if s["succeeded"] != int64(2) {
		t.Errorf("succeeded %v after the member copy went, want the 2 counted before", s["succeeded"])
	}
}

func TestAggregateDaemonSet(t *testing.T) {
	host := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": "d", "generation": int64(3)}, "status": map[string]any{"observedGeneration": int64(2)}}}
	ds := func(gen, observed, desired, ready int64) MemberObject {
		return MemberObject{Cluster: "x", Hash: "h", Obj: &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"generation": gen, "annotations": map[string]any{v1alpha1.AnnotationHash: "h"}},
			"status": map[string]any{"observedGeneration": observed, "desiredNumberScheduled": desired, "numberReady": ready,
				"updatedNumberScheduled": desired, "numberAvailable": ready}}}}
	}
	s := AggregateStatus(host, []MemberObject{ds(1, 1, 2, 2), ds(4, 3, 3, 1)})
	if s["observedGeneration"] != int64(2) || s["desiredNumberScheduled"] != int64(5) || s["numberReady"] != int64(3) {
		t.Fatalf("one member behind: %v", s)
	}
	s = AggregateStatus(host, []MemberObject{ds(1, 1, 2, 2), ds(4, 4, 3, 3)})
	if s["observedGeneration"] != int64(3) || s["numberAvailable"] != int64(5) {
		t.Fatalf("all observed: %v", s)
	}
}

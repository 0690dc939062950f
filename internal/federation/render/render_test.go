package render

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/override"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

func hostDeployment() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "42", "generation": int64(3),
			"creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": []any{v1alpha1.Finalizer},
			"managedFields": []any{map[string]any{"manager": "kubectl"}},
			"labels":        map[string]any{"app": "web"},
			"annotations":   map[string]any{v1alpha1.AnnotationClusters: "[]", "team": "a", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
		},
		"spec": map[string]any{
			"replicas": int64(6),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{
					"serviceAccountName": "web-sa",
					"imagePullSecrets":   []any{map[string]any{"name": "pull"}},
					"volumes": []any{
						map[string]any{"name": "cfg", "configMap": map[string]any{"name": "web-config"}},
						map[string]any{"name": "p", "projected": map[string]any{"sources": []any{map[string]any{"secret": map[string]any{"name": "proj"}}}}},
					},
					"containers": []any{map[string]any{
						"name": "app", "image": "nginx:1",
						"resources": map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "64Mi"}},
						"envFrom":   []any{map[string]any{"secretRef": map[string]any{"name": "env-secret"}}},
						"env":       []any{map[string]any{"name": "X", "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "web-config", "key": "x"}}}},
					}},
				},
			},
		},
		"status": map[string]any{"replicas": int64(6)},
	}}
}

func TestRender(t *testing.T) {
	c := &placement.ClusterInfo{Name: "m1"}
	three := int32(3)
	out, h, err := Render(hostDeployment(), c, &three, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out.Object["status"]; ok {
		t.Error("status copied")
	}
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "finalizers", "managedFields"} {
		if _, ok := out.Object["metadata"].(map[string]any)[f]; ok {
			t.Errorf("metadata.%s copied", f)
		}
	}
	if n, _, _ := unstructured.NestedInt64(out.Object, "spec", "replicas"); n != 3 {
		t.Errorf("replicas = %d, want 3", n)
	}
	ann := out.GetAnnotations()
	if ann["team"] != "a" || ann[v1alpha1.AnnotationClusters] != "" || ann["kubectl.kubernetes.io/last-applied-configuration"] != "" {
		t.Errorf("annotations = %v", ann)
	}
	if ann[v1alpha1.AnnotationHash] != h || out.GetLabels()[v1alpha1.LabelManaged] != "true" {
		t.Errorf("hash annotation / managed label missing: %v %v", ann, out.GetLabels())
	}
	// The host object is not modified.
	if hostDeployment().GetResourceVersion() != "42" {
		t.Fatal("host object changed")
	}
}

func TestRenderHash(t *testing.T) {
	c := &placement.ClusterInfo{Name: "m1"}
	n := func(v int32) *int32 { return &v }
	img := func(s string) []override.Policy {
		return []override.Policy{{Name: "o", Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{
			Overriders: v1alpha1.Overriders{Image: []v1alpha1.ImageOverride{{Image: s}}}}}}}}
	}
	_, base, _ := Render(hostDeployment(), c, n(3), nil)
	for _, tc := range []struct {
		name     string
		mutate   func(*unstructured.Unstructured)
		replicas *int32
		ovr      []override.Policy
		same     bool
	}{
		{"identical", nil, n(3), nil, true},
		{"host-only change (status, resourceVersion)", func(o *unstructured.Unstructured) {
			o.SetResourceVersion("43")
			o.Object["status"] = map[string]any{"readyReplicas": int64(1)}
		}, n(3), nil, true},
		{"host total replicas change but share unchanged", func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(7), "spec", "replicas")
		}, n(3), nil, true},
		{"share changes", nil, n(4), nil, false},
		{"override changes", nil, n(3), img("nginx:2"), false},
		{"template changes", func(o *unstructured.Unstructured) { o.SetLabels(map[string]string{"app": "web", "v": "2"}) }, n(3), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hostDeployment()
			if tc.mutate != nil {
				tc.mutate(h)
			}
			_, got, err := Render(h, c, tc.replicas, tc.ovr)
			if err != nil {
				t.Fatal(err)
			}
			if (got == base) != tc.same {
				t.Fatalf("hash %s vs base %s, want same=%v", got, base, tc.same)
			}
		})
	}
}

func TestDependenciesAndRequests(t *testing.T) {
	got := Dependencies(hostDeployment())
	want := []Dependency{{"ConfigMap", "web-config"}, {"Secret", "env-secret"}, {"Secret", "proj"}, {"Secret", "pull"}, {"ServiceAccount", "web-sa"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Dependencies = %v, want %v", got, want)
	}
	cpu, mem := ReplicaRequests(hostDeployment())
	if cpu != 250 || mem != 64<<20 {
		t.Fatalf("requests = %dm %d, want 250m 64Mi", cpu, mem)
	}
}

func TestStripAllocated(t *testing.T) {
	svc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "s"},
		"spec":     map[string]any{"clusterIP": "10.96.0.5", "clusterIPs": []any{"10.96.0.5"}, "ports": []any{}}}}
	out, _, err := Render(svc, &placement.ClusterInfo{Name: "m"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := unstructured.NestedString(out.Object, "spec", "clusterIP"); ok {
		t.Error("clusterIP copied")
	}
}

func TestResolve(t *testing.T) {
	desired, _, err := Render(hostDeployment(), &placement.ClusterInfo{Name: "m1"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreignEqual := withoutOwnMarks(desired)
	// what a member's apiserver adds by defaulting must not matter
	_ = unstructured.SetNestedField(foreignEqual.Object, "RollingUpdate", "spec", "strategy", "type")
	foreignEqual.SetResourceVersion("7")
	foreignDiff := foreignEqual.DeepCopy()
	_ = unstructured.SetNestedField(foreignDiff.Object, int64(1), "spec", "replicas")
	managedSame := desired.DeepCopy()
	managedOld := desired.DeepCopy()
	managedOld.SetAnnotations(map[string]string{v1alpha1.AnnotationHash: "old"})

	for _, tc := range []struct {
		name     string
		existing *unstructured.Unstructured
		res      v1alpha1.ConflictResolution
		want     Action
	}{
		{"absent", nil, "", Apply},
		{"managed, same hash", managedSame, "", Skip},
		{"managed, old hash", managedOld, "", Apply},
		{"foreign, abort by default", foreignEqual, "", Abort},
		{"foreign, abort", foreignEqual, v1alpha1.ConflictAbort, Abort},
		{"foreign equal, adopt", foreignEqual, v1alpha1.ConflictAdopt, Apply},
		{"foreign different, adopt refused", foreignDiff, v1alpha1.ConflictAdopt, Abort},
		{"foreign different, overwrite", foreignDiff, v1alpha1.ConflictOverwrite, Apply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Resolve(tc.existing, desired, tc.res)
			if got != tc.want {
				t.Fatalf("Resolve = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

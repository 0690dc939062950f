package override

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

func deployment() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "labels": map[string]any{"app": "web"}},
		"spec": map[string]any{
			"replicas": int64(3),
			"template": map[string]any{"spec": map[string]any{
				"initContainers": []any{map[string]any{"name": "init", "image": "busybox:1.36"}},
				"containers": []any{
					map[string]any{"name": "app", "image": "registry.example.com:5000/team/web:v1", "args": []any{"--a"},
						"env": []any{map[string]any{"name": "MODE", "value": "x"}, map[string]any{"name": "OLD", "value": "y"}}},
					map[string]any{"name": "sidecar", "image": "envoy@sha256:abc"},
				},
			}},
		},
	}}
}

func ptr[T any](v T) *T { return &v }

func container(t *testing.T, obj *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	spec, _ := PodSpec(obj.Object)
	for _, field := range []string{"containers", "initContainers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			if m := c.(map[string]any); m["name"] == name {
				return m
			}
		}
	}
	t.Fatalf("container %s not found", name)
	return nil
}

func TestApplyOverriders(t *testing.T) {
	member := &placement.ClusterInfo{Name: "m1", Region: "eu"}
	for _, tc := range []struct {
		name  string
		ovr   v1alpha1.Overriders
		check func(t *testing.T, obj *unstructured.Unstructured)
	}{
		{"whole image of one container", v1alpha1.Overriders{Image: []v1alpha1.ImageOverride{{Container: "app", Image: "nginx:1.27"}}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				if got := container(t, obj, "app")["image"]; got != "nginx:1.27" {
					t.Fatalf("image = %v", got)
				}
				if got := container(t, obj, "sidecar")["image"]; got != "envoy@sha256:abc" {
					t.Fatalf("sidecar image changed: %v", got)
				}
			}},
		{"registry and tag of every container", v1alpha1.Overriders{Image: []v1alpha1.ImageOverride{{Registry: "mirror.eu", Tag: "v2"}}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				for name, want := range map[string]string{"app": "mirror.eu/team/web:v2", "sidecar": "mirror.eu/envoy:v2", "init": "mirror.eu/busybox:v2"} {
					if got := container(t, obj, name)["image"]; got != want {
						t.Errorf("%s image = %v, want %s", name, got, want)
					}
				}
			}},
		{"args append and replace", v1alpha1.Overriders{Args: []v1alpha1.ArgsOverride{{Container: "app", Operator: "append", Args: []string{"--b"}}, {Container: "sidecar", Args: []string{"--c"}}}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				if got := container(t, obj, "app")["args"].([]any); len(got) != 2 || got[1] != "--b" {
					t.Errorf("app args = %v", got)
				}
				if got := container(t, obj, "sidecar")["args"].([]any); len(got) != 1 || got[0] != "--c" {
					t.Errorf("sidecar args = %v", got)
				}
			}},
		{"env set, replace and remove", v1alpha1.Overriders{Env: []v1alpha1.EnvOverride{{Container: "app", Remove: []string{"OLD"}, Env: []corev1.EnvVar{{Name: "MODE", Value: "eu"}, {Name: "NEW", Value: "1"}}}}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				env := container(t, obj, "app")["env"].([]any)
				if len(env) != 2 || env[0].(map[string]any)["value"] != "eu" || env[1].(map[string]any)["name"] != "NEW" {
					t.Errorf("env = %v", env)
				}
			}},
		{"labels set and removed", v1alpha1.Overriders{Labels: map[string]*string{"region": ptr("eu"), "app": nil}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				if l := obj.GetLabels(); l["region"] != "eu" || len(l) != 1 {
					t.Errorf("labels = %v", l)
				}
			}},
		{"json patch runs after image", v1alpha1.Overriders{
			Image:     []v1alpha1.ImageOverride{{Container: "app", Image: "from-image-overrider"}},
			JSONPatch: []v1alpha1.JSONPatchOp{{Op: "replace", Path: "/spec/template/spec/containers/0/image", Value: "from-patch"}, {Op: "replace", Path: "/spec/replicas", Value: 5}}},
			func(t *testing.T, obj *unstructured.Unstructured) {
				if got := container(t, obj, "app")["image"]; got != "from-patch" {
					t.Errorf("image = %v, want the JSON patch to win", got)
				}
				if n, ok, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas"); !ok || n != 5 {
					t.Errorf("replicas = %v (%v), want int64 5", n, ok)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := deployment()
			p := Policy{Name: "p", Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{Overriders: tc.ovr}}}}
			if _, err := Apply(obj, member, []Policy{p}); err != nil {
				t.Fatal(err)
			}
			tc.check(t, obj)
		})
	}
}

func TestPolicyOrderAndTargeting(t *testing.T) {
	set := func(img string) v1alpha1.Overriders {
		return v1alpha1.Overriders{Image: []v1alpha1.ImageOverride{{Container: "app", Image: img}}}
	}
	policies := []Policy{
		{Name: "b-ns", Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{Overriders: set("ns-b")}}}},
		{Name: "a-ns", Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{Overriders: set("ns-a")}}}},
		{Name: "z-cluster", ClusterWide: true, Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{Overriders: set("cluster")}}}},
		{Name: "other-member", Spec: v1alpha1.OverrideSpec{Rules: []v1alpha1.OverrideRule{{
			TargetCluster: &v1alpha1.ClusterAffinity{ClusterNames: []string{"m2"}}, Overriders: set("m2-only")}}}},
		{Name: "other-kind", Spec: v1alpha1.OverrideSpec{
			ResourceSelectors: []v1alpha1.ResourceSelector{{APIVersion: "apps/v1", Kind: "StatefulSet"}},
			Rules:             []v1alpha1.OverrideRule{{Overriders: set("sts")}}}},
	}
	obj := deployment()
	applied, err := Apply(obj, &placement.ClusterInfo{Name: "m1"}, policies)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"z-cluster", "a-ns", "b-ns"}
	if len(applied) != len(want) {
		t.Fatalf("applied = %v, want %v", applied, want)
	}
	for i := range want {
		if applied[i] != want[i] {
			t.Fatalf("applied = %v, want %v", applied, want)
		}
	}
	if got := container(t, obj, "app")["image"]; got != "ns-b" {
		t.Fatalf("image = %v, want the last namespaced policy by name (ns-b)", got)
	}
}

func TestSelectsSpecificity(t *testing.T) {
	obj := deployment()
	for _, tc := range []struct {
		sel  v1alpha1.ResourceSelector
		want int
	}{
		{v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment"}, 1},
		{v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, 3},
		{v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: "api"}, 0},
		{v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "other"}, 0},
		{v1alpha1.ResourceSelector{APIVersion: "v1", Kind: "Deployment"}, 0},
	} {
		if got := Selects(&tc.sel, obj); got != tc.want {
			t.Errorf("Selects(%+v) = %d, want %d", tc.sel, got, tc.want)
		}
	}
}

package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

func TestMatchPolicy(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop", "labels": map[string]any{"tier": "front"}}}}
	sel := func(name string, labels map[string]string) []v1alpha1.ResourceSelector {
		s := v1alpha1.ResourceSelector{APIVersion: "apps/v1", Kind: "Deployment", Name: name}
		if labels != nil {
			s.LabelSelector = &metav1.LabelSelector{MatchLabels: labels}
		}
		return []v1alpha1.ResourceSelector{s}
	}
	pol := func(name string, cw bool, prio int32, s []v1alpha1.ResourceSelector) policy {
		return policy{name: name, clusterWide: cw, spec: v1alpha1.PropagationSpec{Priority: prio, ResourceSelectors: s}}
	}
	for _, tc := range []struct {
		name string
		ps   []policy
		want string
	}{
		{"none", []policy{pol("shop/x", false, 0, sel("other", nil))}, ""},
		{"other namespace ignored", []policy{pol("prod/x", false, 0, sel("", nil))}, ""},
		{"namespaced beats cluster-wide despite priority", []policy{pol("cluster/c", true, 100, sel("web", nil)), pol("shop/n", false, 0, sel("", nil))}, "shop/n"},
		{"priority beats specificity", []policy{pol("shop/a", false, 0, sel("web", nil)), pol("shop/b", false, 1, sel("", nil))}, "shop/b"},
		{"name beats labels beats kind", []policy{pol("shop/kind", false, 0, sel("", nil)), pol("shop/labels", false, 0, sel("", map[string]string{"tier": "front"})), pol("shop/name", false, 0, sel("web", nil))}, "shop/name"},
		{"labels beat kind", []policy{pol("shop/kind", false, 0, sel("", nil)), pol("shop/labels", false, 0, sel("", map[string]string{"tier": "front"}))}, "shop/labels"},
		{"tie broken by name", []policy{pol("shop/b", false, 0, sel("", nil)), pol("shop/a", false, 0, sel("", nil))}, "shop/a"},
		{"cluster-wide when alone", []policy{pol("cluster/c", true, 0, sel("", nil))}, "cluster/c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MatchPolicy(obj, tc.ps)
			if tc.want == "" {
				if ok {
					t.Fatalf("matched %s, want none", got.name)
				}
				return
			}
			if !ok || got.name != tc.want {
				t.Fatalf("matched %q (%v), want %q", got.name, ok, tc.want)
			}
		})
	}
}

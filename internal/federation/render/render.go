package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/override"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// hostOnlyAnnotations are never copied to members.
var hostOnlyAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"deployment.kubernetes.io/revision",
	v1alpha1.AnnotationPolicy,
	v1alpha1.AnnotationClusters,
	v1alpha1.AnnotationHash,
}

// Render returns the manifest for cluster c and its hash. replicas, if
// not nil, replaces spec.replicas.
func Render(host *unstructured.Unstructured, c *placement.ClusterInfo, replicas *int32, overrides []override.Policy) (*unstructured.Unstructured, string, error) {
	out := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": host.GetAPIVersion(),
		"kind":       host.GetKind(),
	}}
	for k, v := range host.Object {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		default:
			out.Object[k] = deepCopy(v)
		}
	}
	out.SetName(host.GetName())
	if ns := host.GetNamespace(); ns != "" {
		out.SetNamespace(ns)
	}
	if l := host.GetLabels(); len(l) > 0 {
		out.SetLabels(l)
	}
	if a := host.GetAnnotations(); len(a) > 0 {
		for _, k := range hostOnlyAnnotations {
			delete(a, k)
		}
		if len(a) > 0 {
			out.SetAnnotations(a)
		}
	}
	stripAllocated(out)
	if replicas != nil {
		if err := unstructured.SetNestedField(out.Object, int64(*replicas), "spec", "replicas"); err != nil {
			return nil, "", fmt.Errorf("setting replicas: %w", err)
		}
	}
	if _, err := override.Apply(out, c, overrides); err != nil {
		return nil, "", err
	}
	labels := out.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1alpha1.LabelManaged] = "true"
	out.SetLabels(labels)
	h, err := Hash(out)
	if err != nil {
		return nil, "", err
	}
	ann := out.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[v1alpha1.AnnotationHash] = h
	out.SetAnnotations(ann)
	return out, h, nil
}

// Hash is a stable hash of obj without its hash annotation: encoding/json
// writes map keys sorted, so equal content hashes equal.
func Hash(obj *unstructured.Unstructured) (string, error) {
	o := obj.Object
	if a := obj.GetAnnotations(); a[v1alpha1.AnnotationHash] != "" {
		c := obj.DeepCopy()
		ann := c.GetAnnotations()
		delete(ann, v1alpha1.AnnotationHash)
		c.SetAnnotations(ann)
		o = c.Object
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("hashing %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// stripAllocated removes fields the host's apiserver allocated that a
// member must allocate itself.
func stripAllocated(obj *unstructured.Unstructured) {
	switch obj.GetKind() {
	case "Service":
		if t, _, _ := unstructured.NestedString(obj.Object, "spec", "clusterIP"); t != "None" {
			unstructured.RemoveNestedField(obj.Object, "spec", "clusterIP")
			unstructured.RemoveNestedField(obj.Object, "spec", "clusterIPs")
		}
		unstructured.RemoveNestedField(obj.Object, "spec", "healthCheckNodePort")
	case "Job":
		if manual, _, _ := unstructured.NestedBool(obj.Object, "spec", "manualSelector"); !manual {
			unstructured.RemoveNestedField(obj.Object, "spec", "selector")
			for _, k := range []string{"controller-uid", "batch.kubernetes.io/controller-uid"} {
				unstructured.RemoveNestedField(obj.Object, "spec", "template", "metadata", "labels", k)
			}
		}
	case "PersistentVolumeClaim":
		unstructured.RemoveNestedField(obj.Object, "spec", "volumeName")
	case "ServiceAccount":
		delete(obj.Object, "secrets")
	}
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = deepCopy(x)
		}
		return s
	default:
		return v
	}
}

// Replicas returns spec.replicas of a workload and whether it has one.
// A workload without the field (defaulted by its apiserver) counts as 1.
func Replicas(obj *unstructured.Unstructured) (int32, bool) {
	switch obj.GetKind() {
	case "Deployment", "StatefulSet", "ReplicaSet":
	default:
		if _, ok, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "replicas"); !ok {
			return 0, false
		}
	}
	n, ok, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if !ok {
		return 1, true
	}
	return int32(n), true
}

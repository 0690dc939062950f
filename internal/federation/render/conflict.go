package render

import (
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// Action is what to do with one member object.
type Action int

// Actions.
const (
	// Apply the rendered manifest (server-side apply, forced).
	Apply Action = iota
	// Skip: the member already has this exact rendering.
	Skip
	// Abort: leave the member object alone and report a conflict.
	Abort
)

func (a Action) String() string {
	switch a {
	case Apply:
		return "apply"
	case Skip:
		return "skip"
	default:
		return "abort"
	}
}

// Resolve decides what to do with desired given what the member holds
// (existing, nil if absent) and the policy's conflict resolution.
//
// An object keelson manages (LabelManaged) is applied unless its hash
// annotation equals desired's. A pre-existing object keelson did not
// create is: with Abort (the default) left alone and reported; with Adopt
// taken over only if it already equals desired (every field desired sets
// has the same value in existing; fields the member's apiserver defaulted
// are ignored), else reported; with Overwrite taken over.
func Resolve(existing, desired *unstructured.Unstructured, res v1alpha1.ConflictResolution) (Action, string) {
	if existing == nil {
		return Apply, ""
	}
	if existing.GetLabels()[v1alpha1.LabelManaged] == "true" {
		if existing.GetAnnotations()[v1alpha1.AnnotationHash] == desired.GetAnnotations()[v1alpha1.AnnotationHash] {
			return Skip, ""
		}
		return Apply, ""
	}
	switch res {
	case v1alpha1.ConflictOverwrite:
		return Apply, "overwriting an object keelson did not create"
	case v1alpha1.ConflictAdopt:
		if path, ok := Contains(existing.Object, withoutOwnMarks(desired).Object, ""); !ok {
			return Abort, fmt.Sprintf("conflict: existing object differs at %s; not adopted", path)
		}
		return Apply, "adopting an equal existing object"
	default:
		return Abort, "conflict: the object exists in the member and was not created by keelson (conflictResolution Abort)"
	}
}

// withoutOwnMarks returns desired without the label and annotation keelson
// adds, for comparison with an object it did not write.
func withoutOwnMarks(desired *unstructured.Unstructured) *unstructured.Unstructured {
	c := desired.DeepCopy()
	l := c.GetLabels()
	delete(l, v1alpha1.LabelManaged)
	c.SetLabels(l)
	a := c.GetAnnotations()
	delete(a, v1alpha1.AnnotationHash)
	c.SetAnnotations(a)
	if len(c.GetLabels()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	}
	if len(c.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	return c
}

// Contains reports whether every field set in want has the same value in
// have (maps by key, lists element-wise with equal length); if not, it
// returns the first path that differs.
func Contains(have, want any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return pathOr(path), false
		}
		for k, wv := range w {
			if p, ok := Contains(h[k], wv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return pathOr(path), false
		}
		for i := range w {
			if p, ok := Contains(h[i], w[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		if hn, ok := number(have); ok {
			if wn, ok := number(want); ok && hn == wn {
				return "", true
			}
		}
		if reflect.DeepEqual(have, want) {
			return "", true
		}
		return pathOr(path), false
	}
}

func pathOr(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

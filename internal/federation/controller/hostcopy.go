package controller

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// hostCopy is what a host informer keeps of one propagated object: its
// identity and the object (without managedFields) as JSON. A decoded
// unstructured Deployment takes several times the memory of its JSON
// (a map per level, every value boxed), and a reconcile needs its own
// copy of the object anyway (it used to DeepCopy the cached one), so it
// decodes the JSON instead.
type hostCopy struct {
	// ObjectMeta carries name, namespace, uid and resourceVersion only,
	// for meta.Accessor and the informer's key function.
	metav1.ObjectMeta
	raw []byte
}

// object decodes a fresh copy of the host object.
func (h *hostCopy) object() (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(h.raw); err != nil {
		return nil, fmt.Errorf("decoding cached %s/%s: %w", h.Namespace, h.Name, err)
	}
	return u, nil
}

// compactHostObject is the host informers' transform: managedFields are
// never read (updates without them keep the server's), the rest is kept
// as JSON in a hostCopy.
func compactHostObject(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil // already compact, or a tombstone
	}
	u.SetManagedFields(nil)
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s/%s for the cache: %w", u.GetNamespace(), u.GetName(), err)
	}
	h := &hostCopy{raw: raw}
	h.Name, h.Namespace, h.UID, h.ResourceVersion = u.GetName(), u.GetNamespace(), u.GetUID(), u.GetResourceVersion()
	return h, nil
}

// hostObject returns a fresh, modifiable copy of a cached host object.
func hostObject(o any) (*unstructured.Unstructured, error) {
	switch o := o.(type) {
	case *hostCopy:
		return o.object()
	case *unstructured.Unstructured:
		return o.DeepCopy(), nil
	}
	return nil, fmt.Errorf("unexpected cached object %T", o)
}

package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
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

// GetObjectKind and DeepCopyObject make a hostCopy a runtime.Object, so
// that a hostList's items can be read by the informer's reflector.
func (h *hostCopy) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject copies the metadata; raw is never modified in place.
func (h *hostCopy) DeepCopyObject() runtime.Object {
	out := &hostCopy{raw: h.raw}
	h.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// hostList is one page of a host list, decoded straight into hostCopies
// (see hostListWatch).
type hostList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []hostCopy
}

// DeepCopyObject copies the list; the items share raw (read only).
func (l *hostList) DeepCopyObject() runtime.Object {
	out := &hostList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]hostCopy, len(l.Items))
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopyObject().(*hostCopy)
	}
	return out
}

// hostListWatch is the host informers' list and watch. Lists are plain
// paginated LISTs whose pages are cut into items and turned into
// hostCopies without building an unstructured object per item: after a
// restart the control plane cannot see a change until the host list is
// in, and decoding it (a streamed watch-list event by event, each decoded
// into maps and encoded again by compactHostObject) was most of its CPU.
// Watches stay as they are: events are few and compactHostObject
// handles them.
type hostListWatch struct {
	rc  rest.Interface
	dyn dynamic.Interface
	gvr schema.GroupVersionResource
}

var _ cache.ListerWatcherWithContext = &hostListWatch{}

// IsWatchListSemanticsUnSupported makes the reflector LIST (see
// hostListWatch) instead of streaming the initial state over a watch.
func (*hostListWatch) IsWatchListSemanticsUnSupported() bool { return true }

func (lw *hostListWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), opts)
}

func (lw *hostListWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), opts)
}

func (lw *hostListWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return lw.dyn.Resource(lw.gvr).Namespace(metav1.NamespaceAll).Watch(ctx, opts)
}

func (lw *hostListWatch) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	path := []string{"apis", lw.gvr.Group, lw.gvr.Version, lw.gvr.Resource}
	if lw.gvr.Group == "" {
		path = []string{"api", lw.gvr.Version, lw.gvr.Resource}
	}
	r := lw.rc.Get().AbsPath(path...)
	for k, v := range map[string]string{"resourceVersion": opts.ResourceVersion, "resourceVersionMatch": string(opts.ResourceVersionMatch),
		"continue": opts.Continue, "labelSelector": opts.LabelSelector, "fieldSelector": opts.FieldSelector} {
		if v != "" {
			r = r.Param(k, v)
		}
	}
	if opts.Limit > 0 {
		r = r.Param("limit", strconv.FormatInt(opts.Limit, 10))
	}
	if opts.TimeoutSeconds != nil {
		r = r.Param("timeoutSeconds", strconv.FormatInt(*opts.TimeoutSeconds, 10))
	}
	body, err := r.Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	l, err := decodeHostList(body)
	if err != nil {
		return nil, fmt.Errorf("decoding %s list: %w", lw.gvr.Resource, err)
	}
	return l, nil
}

// decodeHostList turns a list response into a hostList: it validates the
// body once, then walks it to find each item and, in each, the metadata
// fields a hostCopy keeps and the managedFields member it drops.
func decodeHostList(body []byte) (*hostList, error) {
	if !json.Valid(body) {
		return nil, errors.New("invalid JSON")
	}
	l := &hostList{}
	is, ie := -1, -1
	err := eachMember(body, skipSpace(body, 0), func(key string, vs, ve int) error {
		switch key {
		case "metadata":
			return json.Unmarshal(body[vs:ve], &l.ListMeta)
		case "kind":
			return json.Unmarshal(body[vs:ve], &l.Kind)
		case "apiVersion":
			return json.Unmarshal(body[vs:ve], &l.APIVersion)
		case "items":
			is, ie = vs, ve
		}
		return nil
	})
	if err != nil || is < 0 || body[is] == 'n' { // no items, or null
		return l, err
	}
	// Items of built-in kinds come without apiVersion and kind: they are
	// the list's (as unstructured list decoding does).
	typeMeta := fmt.Sprintf(`"apiVersion":%q,"kind":%q`, l.APIVersion, strings.TrimSuffix(l.Kind, "List"))
	err = eachElement(body[:ie], is, func(es, ee int) error {
		h, err := decodeHostItem(body[es:ee], typeMeta)
		if err != nil {
			return err
		}
		l.Items = append(l.Items, h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// decodeHostItem builds the hostCopy of one valid JSON object: its
// metadata identity, and the object without metadata.managedFields;
// typeMeta (JSON members) is added when the item has neither apiVersion
// nor kind.
func decodeHostItem(item []byte, typeMeta string) (hostCopy, error) {
	var h hostCopy
	cutStart, cutEnd := -1, -1
	typed := false
	err := eachMember(item, 0, func(key string, vs, ve int) error {
		if key == "apiVersion" || key == "kind" {
			typed = true
		}
		if key != "metadata" {
			return nil
		}
		first := true
		prevEnd := -1 // end of the previous member's value
		return eachMemberSpan(item, vs, func(key string, ks, vs, ve int) error {
			defer func() { first, prevEnd = false, ve }()
			var dst *string
			switch key {
			case "name":
				dst = &h.Name
			case "namespace":
				dst = &h.Namespace
			case "uid":
				dst = (*string)(&h.UID)
			case "resourceVersion":
				dst = &h.ResourceVersion
			case "managedFields":
				if first {
					// Cut the member and the comma after it, if any.
					cutStart, cutEnd = ks, ve
					if n := skipSpace(item, ve); n < len(item) && item[n] == ',' {
						cutEnd = n + 1
					}
				} else {
					// Cut the comma before it and the member.
					cutStart, cutEnd = prevEnd, ve
				}
				return nil
			default:
				return nil
			}
			return json.Unmarshal(item[vs:ve], dst)
		})
	})
	if err != nil {
		return h, err
	}
	if cutStart < 0 {
		cutStart, cutEnd = len(item), len(item)
	}
	h.raw = make([]byte, 0, len(item)-(cutEnd-cutStart)+len(typeMeta)+1)
	if !typed {
		// item starts with '{' (eachMember checked).
		h.raw = append(append(h.raw, '{'), typeMeta...)
		if rest := skipSpace(item, 1); item[rest] != '}' {
			h.raw = append(h.raw, ',')
		}
		item = item[1:]
		cutStart, cutEnd = cutStart-1, cutEnd-1
	}
	h.raw = append(append(h.raw, item[:cutStart]...), item[cutEnd:]...)
	return h, nil
}

// The walkers below read JSON that json.Valid accepted: they only find
// where values start and end.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the value that starts at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("unexpected end of JSON")
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return 0, errors.New("unterminated string")
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, nil
				}
			case '"':
				e, err := skipValue(b, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			}
		}
		return 0, errors.New("unterminated object or array")
	}
	j := i
	for j < len(b) && !strings.ContainsRune(" \t\r\n,}]", rune(b[j])) {
		j++
	}
	return j, nil
}

// eachMember calls f with each key of the object at b[i] and its value's
// span.
func eachMember(b []byte, i int, f func(key string, vs, ve int) error) error {
	return eachMemberSpan(b, i, func(key string, _, vs, ve int) error { return f(key, vs, ve) })
}

// eachMemberSpan is eachMember that also passes where the key starts.
func eachMemberSpan(b []byte, i int, f func(key string, ks, vs, ve int) error) error {
	if i >= len(b) || b[i] != '{' {
		return errors.New("expected an object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		ks := i
		ke, err := skipValue(b, ks)
		if err != nil {
			return err
		}
		var key string
		if bytes.IndexByte(b[ks+1:ke-1], '\\') < 0 {
			key = string(b[ks+1 : ke-1])
		} else if err := json.Unmarshal(b[ks:ke], &key); err != nil {
			return err
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return errors.New("expected a colon")
		}
		vs := skipSpace(b, i+1)
		ve, err := skipValue(b, vs)
		if err != nil {
			return err
		}
		if err := f(key, ks, vs, ve); err != nil {
			return err
		}
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == '}' {
			return nil
		}
		if i >= len(b) || b[i] != ',' {
			return errors.New("expected a comma")
		}
		i = skipSpace(b, i+1)
	}
	return errors.New("unterminated object")
}

// eachElement calls f with the span of each element of the array at b[i].
func eachElement(b []byte, i int, f func(s, e int) error) error {
	if i >= len(b) || b[i] != '[' {
		return errors.New("expected an array")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		e, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := f(i, e); err != nil {
			return err
		}
		i = skipSpace(b, e)
		if i < len(b) && b[i] == ']' {
			return nil
		}
		if i >= len(b) || b[i] != ',' {
			return errors.New("expected a comma")
		}
		i = skipSpace(b, i+1)
	}
	return errors.New("unterminated array")
}

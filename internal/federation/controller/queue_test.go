package controller

import (
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

func key(name string) objectKey {
	return objectKey{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Namespace: "ns", Name: name}
}

// TestPriorityQueue: keys queued in the background (initial lists, bulk
// requeues) are handed out after live ones, and a live event for a key
// still waiting in the background moves it ahead.
func TestPriorityQueue(t *testing.T) {
	bg := newBackgroundSet()
	q := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[objectKey]{Queue: &priorityFIFO{bg: bg}})
	defer q.ShutDown()
	for _, n := range []string{"b1", "b2", "b3"} {
		bg.mark(key(n), "")
		q.Add(key(n))
	}
	q.Add(key("live1"))
	// b2 gets a live change while it waits: it is promoted.
	bg.clear(key("b2"))
	q.Add(key("b2"))
	q.Add(key("live2"))
	got := drain(q, bg)
	want := []string{"live1", "b2", "live2", "b1", "b3"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// TestBackgroundMostRecentFirst: background keys come out highest host
// resourceVersion first (an object changed while the control plane was
// down is the most recently modified), FIFO among equal ones, and an
// empty resourceVersion keeps the one recorded.
func TestBackgroundMostRecentFirst(t *testing.T) {
	bg := newBackgroundSet()
	q := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[objectKey]{Queue: &priorityFIFO{bg: bg}})
	defer q.ShutDown()
	for _, e := range []struct{ name, rv string }{{"old", "10"}, {"changed", "900"}, {"mid", "500"}, {"noRV1", "x"}, {"noRV2", ""}, {"mid", ""}} {
		bg.mark(key(e.name), e.rv)
		q.Add(key(e.name))
	}
	got := drain(q, bg)
	want := []string{"changed", "mid", "old", "noRV1", "noRV2"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestStripMemberCopy: the member cache keeps what status aggregation and
// the unchanged check read (and spec.replicas, for member HPAs and
// capacity division), and nothing else.
func TestStripMemberCopy(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{
			"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "generation": int64(3),
			"labels":        map[string]any{v1alpha1.LabelManaged: "true", "app": "web"},
			"annotations":   map[string]any{v1alpha1.AnnotationHash: "h1", "deployment.kubernetes.io/revision": "2"},
			"managedFields": []any{map[string]any{"manager": "x"}},
		},
		"spec":   map[string]any{"replicas": int64(3), "template": map[string]any{}},
		"status": map[string]any{"readyReplicas": int64(2), "observedGeneration": int64(3)},
	}}
	o, err := stripMemberCopy(u)
	if err != nil {
		t.Fatal(err)
	}
	s := o.(*memberCopy).object()
	if spec, _ := s.Object["spec"].(map[string]any); len(spec) != 1 || spec["replicas"] != int64(3) {
		t.Errorf("spec %v, want only replicas (read by memberHPA and holding)", s.Object["spec"])
	}
	if s.GetManagedFields() != nil {
		t.Error("managedFields kept")
	}
	if got := s.GetAnnotations(); len(got) != 1 || got[v1alpha1.AnnotationHash] != "h1" {
		t.Errorf("annotations %v, want only the hash", got)
	}
	if s.GetLabels()[v1alpha1.LabelManaged] != "true" || s.GetGeneration() != 3 || s.GetResourceVersion() != "7" || s.GetName() != "web" || s.GetNamespace() != "shop" {
		t.Errorf("identity or labels lost: %v", s.Object["metadata"])
	}
	if n, _, _ := unstructured.NestedInt64(s.Object, "status", "readyReplicas"); n != 2 {
		t.Errorf("status lost: %v", s.Object["status"])
	}
}

// TestDecodeMemberCopy: an apply's answer decoded straight into the
// stripped form equals the stripped full decode.
func TestDecodeMemberCopy(t *testing.T) {
	raw := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop","uid":"u1","resourceVersion":"7","generation":3,
"labels":{"federation.keelson.dev/managed":"true","app":"web"},"annotations":{"federation.keelson.dev/hash":"h1","x":"y"},
"managedFields":[{"manager":"keelson-federation","operation":"Apply","fieldsV1":{"f:spec":{}}}]},
"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"a","image":"i"}]}}},
"status":{"readyReplicas":2,"observedGeneration":3,"conditions":[{"type":"Available","status":"True"}]}}`)
	got, err := decodeMemberCopy(raw)
	if err != nil {
		t.Fatal(err)
	}
	full := &unstructured.Unstructured{}
	if err := full.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	mc, _ := stripMemberCopy(full)
	want := mc.(*memberCopy).object()
	if !reflect.DeepEqual(got.Object, want.Object) {
		t.Fatalf("decoded %v\nwant    %v", got.Object, want.Object)
	}
	// A spec that is not an object falls back to the full decode.
	odd := []byte(`{"apiVersion":"v1","kind":"Odd","metadata":{"name":"o","resourceVersion":"1"},"spec":"x","status":{"n":1}}`)
	if u, err := decodeMemberCopy(odd); err != nil || u.GetName() != "o" {
		t.Fatalf("fallback: %v %v", u, err)
	}
}

// TestRecordedUnchanged: the breakdown annotation's hashes tell a changed
// object from an unchanged one before the member caches have loaded.
func TestRecordedUnchanged(t *testing.T) {
	obj := func(ann string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		if ann != "" {
			u.SetAnnotations(map[string]string{v1alpha1.AnnotationClusters: ann})
		}
		return u
	}
	rec := `[{"cluster":"a","applied":true,"hash":"h1"},{"cluster":"b","applied":true,"hash":"h2"}]`
	for _, tc := range []struct {
		name        string
		ann         string
		names       []string
		hashes      map[string]string
		known, same bool
	}{
		{"no annotation", "", []string{"a"}, map[string]string{"a": "h1"}, false, false},
		{"written before hashes", `[{"cluster":"a","applied":true}]`, []string{"a"}, map[string]string{"a": "h1"}, false, false},
		{"same", rec, []string{"a", "b"}, map[string]string{"a": "h1", "b": "h2"}, true, true},
		{"rendering changed", rec, []string{"a", "b"}, map[string]string{"a": "h1", "b": "h3"}, true, false},
		{"cluster dropped", rec, []string{"a"}, map[string]string{"a": "h1"}, true, false},
		{"cluster added", rec, []string{"a", "b", "c"}, map[string]string{"a": "h1", "b": "h2", "c": "h4"}, true, false},
		{"render failed", rec, []string{"a", "b"}, map[string]string{"a": "h1"}, true, false},
	} {
		known, same := recordedUnchanged(obj(tc.ann), tc.names, tc.hashes)
		if known != tc.known || same != tc.same {
			t.Errorf("%s: known %v same %v, want %v %v", tc.name, known, same, tc.known, tc.same)
		}
	}
}

// drain takes every key off q in order, as a worker would (clearing its
// background mark), and returns their names.
func drain(q workqueue.TypedInterface[objectKey], bg *backgroundSet) []string {
	var got []string
	for q.Len() > 0 {
		k, _ := q.Get()
		bg.clear(k)
		got = append(got, k.Name)
		q.Done(k)
	}
	return got
}

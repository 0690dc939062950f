package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func cluster(name, rv string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetName(name)
	u.SetUID(types.UID("uid-" + name))
	u.SetResourceVersion(rv)
	return u
}

// TestViewFollowsStore: a view is rebuilt as soon as its store changed —
// without waiting for any event handler — and not otherwise.
func TestViewFollowsStore(t *testing.T) {
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	builds := 0
	v := newView(func() int { builds++; return len(store.List()) }, store)
	for _, n := range []string{"a", "b", "c"} {
		if err := store.Add(cluster(n, "1")); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.get(); got != 3 || builds != 1 {
		t.Fatalf("get = %d after %d builds, want 3 after 1", got, builds)
	}
	for range 5 {
		v.get()
	}
	if builds != 1 {
		t.Fatalf("%d builds of an unchanged store, want 1", builds)
	}
	if err := store.Update(cluster("b", "2")); err != nil {
		t.Fatal(err)
	}
	v.get()
	if builds != 2 {
		t.Fatalf("update not seen: %d builds, want 2", builds)
	}
	if err := store.Delete(cluster("c", "1")); err != nil {
		t.Fatal(err)
	}
	if got := v.get(); got != 2 || builds != 3 {
		t.Fatalf("delete not seen: get = %d after %d builds", got, builds)
	}
}

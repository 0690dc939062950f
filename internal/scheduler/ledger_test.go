package scheduler

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// casLeases makes a fake clientset enforce resourceVersion preconditions
// on Leases, as the API server does (the fake tracker does not).
func casLeases(client *fake.Clientset) {
	var mu sync.Mutex
	store := map[string]*coordinationv1.Lease{}
	gr := schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}
	client.PrependReactor("*", "leases", func(a clienttesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		switch a.GetVerb() {
		case "get":
			act := a.(clienttesting.GetAction)
			l, ok := store[act.GetName()]
			if !ok {
				return true, nil, apierrors.NewNotFound(gr, act.GetName())
			}
			return true, l.DeepCopy(), nil
		case "create":
			l := a.(clienttesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
			if _, ok := store[l.Name]; ok {
				return true, nil, apierrors.NewAlreadyExists(gr, l.Name)
			}
			l.ResourceVersion = "1"
			store[l.Name] = l
			return true, l.DeepCopy(), nil
		case "update":
			l := a.(clienttesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
			cur, ok := store[l.Name]
			if !ok {
				return true, nil, apierrors.NewNotFound(gr, l.Name)
			}
			if l.ResourceVersion != cur.ResourceVersion {
				return true, nil, apierrors.NewConflict(gr, l.Name, errors.New("resourceVersion changed"))
			}
			rv, _ := strconv.Atoi(cur.ResourceVersion)
			l.ResourceVersion = strconv.Itoa(rv + 1)
			store[l.Name] = l
			return true, l.DeepCopy(), nil
		}
		return false, nil, nil
	})
}

func TestLeaseLedgerSerializesClaims(t *testing.T) {
	client := fake.NewClientset()
	casLeases(client)
	const capacity = 3
	check := func(entries []ClaimEntry) ([]types.UID, error) {
		if len(entries) >= capacity {
			return nil, ErrClaimConflict
		}
		return nil, nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 12 {
		l := &LeaseLedger{Client: client, Namespace: "kube-system", MaxRetries: 50}
		wg.Go(func() {
			err := l.Claim(t.Context(), "n1", ClaimEntry{UID: types.UID(fmt.Sprint("pod-", i)), By: fmt.Sprint("s", i%3)}, check)
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case !errors.Is(err, ErrClaimConflict):
				t.Errorf("claim %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	lease, err := client.CoordinationV1().Leases("kube-system").Get(t.Context(), "n1", metav1GetOptions())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := decodeEntries(lease)
	if err != nil {
		t.Fatal(err)
	}
	if won != capacity || len(entries) != capacity {
		t.Fatalf("%d claims won, %d entries; want %d of each", won, len(entries), capacity)
	}
	// Releasing only removes the releasing instance's own entry.
	e := entries[0]
	l := &LeaseLedger{Client: client, Namespace: "kube-system"}
	if err := l.Release(t.Context(), "n1", e.UID, "someone-else"); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context(), "n1", e.UID, e.By); err != nil {
		t.Fatal(err)
	}
	lease, _ = client.CoordinationV1().Leases("kube-system").Get(t.Context(), "n1", metav1GetOptions())
	if entries, _ := decodeEntries(lease); len(entries) != capacity-1 {
		t.Fatalf("after release: %d entries, want %d", len(entries), capacity-1)
	}
}

func metav1GetOptions() metav1.GetOptions { return metav1.GetOptions{} }

// A ledger writes the version of a Lease it knows without reading it first;
// a stale version fails the precondition and is read again, and a claim
// refused on a version it knew (perhaps stale) is re-checked on a fresh one.
func TestLeaseLedgerWritesKnownVersion(t *testing.T) {
	client := fake.NewClientset()
	casLeases(client)
	const capacity = 4
	check := func(entries []ClaimEntry) ([]types.UID, error) {
		if len(entries) >= capacity {
			return nil, ErrClaimConflict
		}
		return nil, nil
	}
	a := &LeaseLedger{Client: client, Namespace: "kube-system"}
	b := &LeaseLedger{Client: client, Namespace: "kube-system"}
	gets := func() int {
		n := 0
		for _, act := range client.Actions() {
			if act.GetVerb() == "get" {
				n++
			}
		}
		return n
	}
	claim := func(l *LeaseLedger, uid, by string) error {
		return l.Claim(t.Context(), "n1", ClaimEntry{UID: types.UID(uid), By: by}, check)
	}
	for _, c := range []struct {
		l       *LeaseLedger
		uid, by string
	}{{a, "p1", "a"}, {a, "p2", "a"}, {b, "p3", "b"}, {a, "p4", "a"}} {
		if err := claim(c.l, c.uid, c.by); err != nil {
			t.Fatalf("claim %s: %v", c.uid, err)
		}
	}
	before := gets()
	if err := claim(b, "p5", "b"); !errors.Is(err, ErrClaimConflict) {
		t.Fatalf("fifth claim on room for four: %v", err)
	}
	if gets() == before {
		t.Fatal("a claim refused on a known version was not re-checked on a fresh read")
	}
	before = gets()
	if err := a.Release(t.Context(), "n1", "p1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(t.Context(), "n1", "p2", "a"); err != nil {
		t.Fatal(err)
	}
	if gets() != before {
		t.Errorf("a read the Lease whose newest version it wrote itself")
	}
	// b's known version still holds p1 and p2: refused there, it reads
	// the Lease again and the claim fits.
	if err := claim(b, "p5", "b"); err != nil {
		t.Fatalf("claim after releases: %v", err)
	}
	lease, err := client.CoordinationV1().Leases("kube-system").Get(t.Context(), "n1", metav1GetOptions())
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := decodeEntries(lease)
	var got []string
	for _, e := range entries {
		got = append(got, string(e.UID))
	}
	if fmt.Sprint(got) != "[p3 p4 p5]" {
		t.Fatalf("entries %v, want [p3 p4 p5]", got)
	}
}

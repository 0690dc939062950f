package scheduler

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	st "github.com/keelson-dev/keelson/internal/scheduler/schedtest"
)

// Behaviours found running against a real API server with several
// instances (test/scheduler); these pin them down on the fake client.

// A binding that loses to another instance ("already assigned", 409) must
// not mark the pod unschedulable nor record FailedScheduling: the winning
// binding already set PodScheduled=True.
func TestBindingLostToAnotherInstanceIsQuiet(t *testing.T) {
	pod := st.Pod("p").Req("cpu", "1").Obj()
	client, b := newFakeClient(t, pod)
	b.bound[pod.Namespace+"/"+pod.Name] = "elsewhere" // someone else won
	rec := record.NewFakeRecorder(100)
	s := newTestScheduler(t, testConfig(), Options{Client: client, Recorder: rec})
	s.OnNodeAdd(st.Node("n").Cap("cpu", "4", "memory", "4Gi", "pods", "10").Obj())
	s.OnPodAdd(pod)
	client.ClearActions()
	drain(t, s)
	for _, a := range client.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			t.Errorf("pod status patched after a lost binding: %v", a)
		}
	}
	close(rec.Events)
	for e := range rec.Events {
		t.Errorf("event after a lost binding: %s", e)
	}
	if s.cache.IsAssumed(pod.UID) {
		t.Error("pod still assumed after its binding lost")
	}
}

// A pod rejected at Permit (e.g. a gang released) is Unschedulable, not a
// scheduler error, and waits for an event its plugin registered.
func TestPermitRejectionIsUnschedulable(t *testing.T) {
	err := statusError(framework.NewStatus(framework.Unschedulable, "pod group \"g\" released").WithPlugin("gang"))
	var re *rejection
	if !errors.As(err, &re) || re.plugin != "gang" || err.Error() != "pod group \"g\" released" {
		t.Fatalf("statusError = %#v", err)
	}
	if err := statusError(framework.AsStatus(errors.New("boom"))); errors.As(err, &re) {
		t.Fatalf("an error status became a rejection: %v", err)
	}
}

func seedLease(t *testing.T, s *Scheduler, node string, entries ...ClaimEntry) {
	t.Helper()
	raw, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.client.CoordinationV1().Leases("kube-system").Create(t.Context(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: "kube-system", Annotations: map[string]string{ClaimsAnnotation: string(raw)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// A ledger entry left behind by a pod that no longer exists (deleted while
// no instance watched, or an instance died before releasing) is pruned once
// it is old enough to be looked up; a young one is counted.
func TestClaimPrunesLeftoverEntries(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		age       time.Duration
		exists    bool
		wantClaim bool
	}{
		{"old entry of a deleted pod", time.Hour, false, true},
		{"young entry of an unknown pod", time.Second, false, false},
		{"old entry of a pod still pending", time.Hour, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []*v1.Pod
			ghost := st.Pod("ghost").Req("cpu", "1").Obj()
			if tc.exists {
				objs = append(objs, ghost)
			}
			client, _ := newFakeClient(t)
			for _, p := range objs {
				if _, err := client.CoreV1().Pods(p.Namespace).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			casLeases(client)
			cfg := testConfig()
			cfg.MultiInstance.Enabled = true
			cfg.MultiInstance.InstanceID = "me"
			s := newTestScheduler(t, cfg, Options{Client: client, Clock: clocktesting.NewFakeClock(now)})
			s.OnNodeAdd(st.Node("n").Cap("cpu", "1", "memory", "4Gi", "pods", "10").Obj())
			seedLease(t, s, "n", ClaimEntry{UID: ghost.UID, Pod: "default/ghost", MilliCPU: 1000, At: now.Add(-tc.age).Unix(), By: "dead"})

			err := s.claim(t.Context(), framework.NewPodInfo(st.Pod("p").Req("cpu", "1").Obj()), "n")
			if tc.wantClaim && err != nil {
				t.Fatalf("claim: %v", err)
			}
			if !tc.wantClaim && !errors.Is(err, ErrClaimConflict) {
				t.Fatalf("claim = %v, want a conflict", err)
			}
			l, err := client.CoordinationV1().Leases("kube-system").Get(t.Context(), "n", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := DecodeClaims(l)
			var uids []types.UID
			for _, e := range entries {
				uids = append(uids, e.UID)
			}
			if tc.wantClaim && (len(uids) != 1 || uids[0] != "uid-p") {
				t.Errorf("ledger holds %v, want only uid-p", uids)
			}
		})
	}
}

// Several instances may claim the same pending pod on one node (each
// schedules every pod); the pod is counted once.
func TestClaimCountsSamePodOnce(t *testing.T) {
	client, _ := newFakeClient(t)
	casLeases(client)
	cfg := testConfig()
	cfg.MultiInstance.Enabled = true
	cfg.MultiInstance.InstanceID = "me"
	s := newTestScheduler(t, cfg, Options{Client: client})
	s.OnNodeAdd(st.Node("n").Cap("cpu", "1", "memory", "4Gi", "pods", "10").Obj())
	p := st.Pod("p").Req("cpu", "1").Obj()
	seedLease(t, s, "n", ClaimEntry{UID: p.UID, Pod: "default/p", MilliCPU: 1000, At: time.Now().Unix(), By: "other"})
	if err := s.claim(t.Context(), framework.NewPodInfo(p), "n"); err != nil {
		t.Fatalf("claim: %v", err)
	}
}

// Releasing an entry that is not there writes nothing.
func TestLeaseLedgerReleaseWithoutEntryDoesNotWrite(t *testing.T) {
	client, _ := newFakeClient(t)
	casLeases(client)
	l := &LeaseLedger{Client: client, Namespace: "kube-system"}
	if err := l.Claim(t.Context(), "n", ClaimEntry{UID: "a", By: "x"}, func([]ClaimEntry) ([]types.UID, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	if err := l.Release(t.Context(), "n", "b", "x"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("release of a missing entry did %s", a.GetVerb())
		}
	}
}

package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
	etcdrpc "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// Upstream etcd3 tests that read the store's unexported fields, rebuilt on
// the public storage API plus the raw etcd client. Each says what upstream
// checks and what the port checks instead.

// testPrefix: upstream checks store.pathPrefix for several configured
// prefixes; the port checks where an object actually lands in etcd.
func testPrefix(t *testing.T, h harness) {
	testcases := map[string]string{
		"custom/prefix":     "/custom/prefix/",
		"/custom//prefix//": "/custom/prefix/",
		"/registry":         "/registry/",
	}
	for configuredPrefix, effectivePrefix := range testcases {
		t.Run(configuredPrefix, func(t *testing.T) {
			ctx, s := h.setup(t, withPrefix(configuredPrefix))
			obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo"}}
			if err := s.Create(ctx, "/pods/foo", obj, &example.Pod{}, 0); err != nil {
				t.Fatalf("Create failed: %v", err)
			}
			resp, err := s.client.KV.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, kv := range resp.Kvs {
				keys = append(keys, string(kv.Key))
			}
			if want := []string{effectivePrefix + "pods/foo"}; !cmp.Equal(want, keys) {
				t.Errorf("configured prefix %q: keys in etcd %q, want %q", configuredPrefix, keys, want)
			}
		})
	}
}

// testLeaseMaxObjectCount: upstream reads leaseManager.leaseAttachedObjectCount;
// the port checks the leases the objects are attached to in etcd: the first
// two share one, the third gets a new one.
func testLeaseMaxObjectCount(t *testing.T, h harness) {
	cfg := etcd3.NewDefaultLeaseManagerConfig()
	cfg.MaxObjectCount = 2
	ctx, s := h.setup(t, withLeaseConfig(cfg))

	obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo"}}
	keys := []string{"/pods/testkey1", "/pods/testkey2", "/pods/testkey3"}
	leases := make([]clientv3.LeaseID, len(keys))
	for i, key := range keys {
		if err := s.Create(ctx, key, obj, &example.Pod{}, 120); err != nil {
			t.Fatalf("Set failed: %v", err)
		}
		etcdKey, err := s.prepareKey(key, false)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.client.KV.Get(ctx, etcdKey)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("key %s: got %d kvs", etcdKey, len(resp.Kvs))
		}
		leases[i] = clientv3.LeaseID(resp.Kvs[0].Lease)
		if leases[i] == clientv3.NoLease {
			t.Fatalf("key %s is not attached to a lease", etcdKey)
		}
	}
	if leases[0] != leases[1] {
		t.Errorf("objects 1 and 2 are on leases %x and %x, want one shared lease", leases[0], leases[1])
	}
	if leases[2] == leases[0] {
		t.Errorf("object 3 reuses lease %x already attached to 2 objects (MaxObjectCount=2)", leases[2])
	}
	for lease, want := range map[clientv3.LeaseID]int{leases[0]: 2, leases[2]: 1} {
		ttl, err := s.client.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if len(ttl.Keys) != want {
			t.Errorf("lease %x has %d attached keys, want %d", lease, len(ttl.Keys), want)
		}
		if ttl.TTL <= 0 || ttl.GrantedTTL < 120 {
			t.Errorf("lease %x: TTL %d, granted TTL %d; want a live lease of at least 120s", lease, ttl.TTL, ttl.GrantedTTL)
		}
	}
}

// testPrepareKey: upstream calls store.prepareKey directly; the port sends
// the same keys through Create/Get/GetList and checks the etcd keys.
func testPrepareKey(t *testing.T, h harness) {
	validKeys := []string{
		"/pods/foo/bar/baz/a.b.c/",
		"/pods/foo",
		"/pods/foo/bar/baz",
		"/pods/foo/bar..baz/",
		"/pods/foo/bar..",
		"/pods/foo/bar",
		"/pods/foo/bar/",
		"/pods/",
	}
	invalidKeys := []string{
		"/pods",
		"/pods/foo/bar/../a.b.c/",
		"/pods/..",
		"/pods/../",
		"/pods/foo/bar/..",
		"/pods/../foo/bar",
		"/pods/../foo",
		"/pods/foo/bar/../",
		"/pods/.",
		"/pods/./",
		"/pods/foo/.",
		"/pods/./bar",
		"/pods/foo/./bar/",
		"/foo/bar/../a.b.c/",
		"..",
		"/..",
		"../",
		"/foo/bar/..",
		"../foo/bar",
		"/../foo",
		"/foo/bar/../",
		".",
		"/.",
		"./",
		"/./",
		"/foo/.",
		"./bar",
		"/foo/./bar/",
	}
	const (
		pathPrefix   = "/first/second"
		expectPrefix = pathPrefix + "/"
	)
	ctx, s := h.setup(t, withPrefix(pathPrefix))

	t.Run("Non-recursive", func(t *testing.T) {
		for _, key := range validKeys {
			obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo"}}
			if err := s.Create(ctx, key, obj, &example.Pod{}, 0); err != nil {
				t.Errorf("Create at %q should work: %v", key, err)
				continue
			}
			want := expectPrefix + strings.TrimPrefix(key, "/")
			resp, err := s.client.KV.Get(ctx, want, clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Count != 1 {
				t.Errorf("object created at %q is not at etcd key %q", key, want)
			}
		}
	})
	t.Run("Recursive", func(t *testing.T) {
		for _, key := range validKeys {
			list := &example.PodList{}
			if err := s.GetList(ctx, key, storage.ListOptions{Recursive: true, Predicate: storage.Everything}, list); err != nil {
				t.Errorf("recursive list of %q should work: %v", key, err)
			}
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, key := range invalidKeys {
			if err := s.Get(ctx, key, storage.GetOptions{}, &example.Pod{}); err == nil || !strings.Contains(err.Error(), "invalid key") {
				t.Errorf("key %q should be invalid, got %v", key, err)
			}
		}
	})
}

// testInvalidKeys is upstream's, unchanged.
func testInvalidKeys(t *testing.T, h harness) {
	const invalidKey = "/foo/bar/../baz"
	expectedError := fmt.Sprintf("invalid key: %q", invalidKey)

	expectInvalidKey := func(methodName string, err error) {
		if err == nil {
			t.Errorf("[%s] expected invalid key error; got nil", methodName)
		} else if err.Error() != expectedError {
			t.Errorf("[%s] expected invalid key error; got %v", methodName, err)
		}
	}

	ctx, s := h.setup(t)
	expectInvalidKey("Create", s.Create(ctx, invalidKey, nil, nil, 0))
	expectInvalidKey("Delete", s.Delete(ctx, invalidKey, nil, nil, nil, nil, storage.DeleteOptions{}))
	_, watchErr := s.Watch(ctx, invalidKey, storage.ListOptions{})
	expectInvalidKey("Watch", watchErr)
	expectInvalidKey("Get", s.Get(ctx, invalidKey, storage.GetOptions{}, nil))
	expectInvalidKey("GetList", s.GetList(ctx, invalidKey, storage.ListOptions{}, nil))
	expectInvalidKey("GuaranteedUpdate", s.GuaranteedUpdate(ctx, invalidKey, nil, true, nil, nil, nil))
}

// testGetCurrentResourceVersion is upstream's, unchanged.
func testGetCurrentResourceVersion(t *testing.T, h harness) {
	ctx, s := h.setup(t)

	makePod := func(name string) *example.Pod {
		return &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
	}
	createPod := func(obj *example.Pod) *example.Pod {
		out := &example.Pod{}
		require.NoError(t, s.Create(ctx, "/pods/"+obj.Namespace+"/"+obj.Name, obj, out, 0))
		return out
	}
	getPod := func(name, ns string) *example.Pod {
		out := &example.Pod{}
		require.NoError(t, s.Get(ctx, "/pods/"+ns+"/"+name, storage.GetOptions{}, out))
		return out
	}

	// create a pod and make sure its RV is equal to the one maintained by etcd
	pod := createPod(makePod("pod-1"))
	currentStorageRV, err := s.GetCurrentResourceVersion(ctx)
	require.NoError(t, err)
	podRV, err := s.versioner.ParseResourceVersion(pod.ResourceVersion)
	require.NoError(t, err)
	require.Equal(t, currentStorageRV, podRV, "expected the global etcd RV to be equal to pod's RV")

	// now make unrelated write and make sure the target function returns global etcd RV
	resp, err := s.client.KV.Put(ctx, "compact_rev_key", pod.ResourceVersion)
	require.NoError(t, err)
	currentStorageRV, err = s.GetCurrentResourceVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, currentStorageRV, uint64(resp.Header.Revision), "expected the global etcd RV to be equal to replicaset's RV")

	// ensure that the pod's RV hasn't been changed
	currentPod := getPod(pod.Name, pod.Namespace)
	currentPodRV, err := s.versioner.ParseResourceVersion(currentPod.ResourceVersion)
	require.NoError(t, err)
	require.Equal(t, currentPodRV, podRV, "didn't expect to see the pod's RV changed")
}

// testPrefixGetKeys: upstream calls store.getKeys; the port calls the same
// keys-only prefix range (testStore.getKeys).
func testPrefixGetKeys(t *testing.T, h harness) {
	ctx, s := h.setup(t, withPrefix("/registry"), withResourcePrefix("/pods"))
	for key, val := range map[string]string{"key": "a", "/registry/key": "b", "/registry/pods/key": "c", "/registry/podskey": "d"} {
		if _, err := s.client.KV.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	gotKeys, err := s.getKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/registry/pods/key"}, gotKeys); diff != "" {
		t.Errorf("getKeys diff:\n%s", diff)
	}
}

// testPrefixStats is upstream's, with testStore.getKeys for store.getKeys.
func testPrefixStats(t *testing.T, h harness) {
	tcs := []struct {
		name        string
		estimate    bool
		expectStats storage.Stats
	}{
		{name: "Estimate=false", estimate: false, expectStats: storage.Stats{ObjectCount: 1}},
		{name: "Estimate=true", estimate: true, expectStats: storage.Stats{ObjectCount: 1, EstimatedAverageObjectSizeBytes: 3}},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			ctx, s := h.setup(t, withPrefix("/registry"), withResourcePrefix("/pods/"))
			if tc.estimate {
				if err := s.EnableResourceSizeEstimation(s.getKeys); err != nil {
					t.Fatal(err)
				}
			}
			for _, kv := range [][2]string{{"key", "a"}, {"/registry/key", "ab"}, {"/registry/pods/key", "abc"}, {"/registry/podskey", "abcd"}} {
				if _, err := s.client.KV.Put(ctx, kv[0], kv[1]); err != nil {
					t.Fatal(err)
				}
			}
			// Ignore error as decode is expected to fail
			_ = s.GetList(ctx, "/pods/", storage.ListOptions{Predicate: storage.Everything, Recursive: true}, &example.PodList{})
			gotStats, err := s.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.expectStats, gotStats); diff != "" {
				t.Errorf("Stats diff:\n%s", diff)
			}
		})
	}
}

// testWatchErrorIncorrectConfiguration: upstream calls store.watcher.Watch;
// the port goes through store.Watch (the same check, one call earlier).
func testWatchErrorIncorrectConfiguration(t *testing.T, h harness) {
	ctx, s := h.setup(t, withoutNewFunc())
	expectedErr := apierrors.NewInternalError(errors.New("progressNotify for watch is unsupported by the etcd storage because no newFunc was provided"))
	w, err := s.Watch(ctx, "/pods/abc", storage.ListOptions{ProgressNotify: true})
	if err == nil {
		t.Fatalf("expected an error but got none")
	}
	if w != nil {
		t.Fatalf("didn't expect a watcher because the test assumes incorrect store initialisation")
	}
	if err.Error() != expectedErr.Error() {
		t.Fatalf("unexpected err = %v, expected = %v", err, expectedErr)
	}
}

// testTooLargeResourceVersionErrorForWatchList: upstream calls
// store.watcher.Watch at revision 102 of a fresh etcd (current revision 1);
// the port goes through store.Watch.
func testTooLargeResourceVersionErrorForWatchList(t *testing.T, h harness) {
	ctx, s := h.setup(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	requestOpts := storage.ListOptions{
		ResourceVersion:   "102",
		SendInitialEvents: ptr.To(true),
		Recursive:         true,
		Predicate: storage.SelectionPredicate{
			Field:               fields.Everything(),
			Label:               labels.Everything(),
			AllowWatchBookmarks: true,
		},
	}
	var expectedErr *apierrors.StatusError
	if !errors.As(storage.NewTooLargeResourceVersionError(uint64(102), 1, 0), &expectedErr) {
		t.Fatalf("Unable to convert NewTooLargeResourceVersionError to apierrors.StatusError")
	}

	w, err := s.Watch(ctx, "/pods/abc/", requestOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	var actualEvent watch.Event
	select {
	case actualEvent = <-w.ResultChan():
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	if actualEvent.Type != watch.Error {
		t.Fatalf("Unexpected type of the event: %v, expected: %v", actualEvent.Type, watch.Error)
	}
	actualErr, ok := actualEvent.Object.(*metav1.Status)
	if !ok {
		t.Fatalf("Expected *apierrors.StatusError, got: %#v", actualEvent.Object)
	}
	if actualErr.Details == nil || actualErr.Details.RetryAfterSeconds <= 0 {
		t.Fatalf("RetryAfterSeconds must be > 0; got status %#v with details %#v", *actualErr, actualErr.Details)
	}
	expectedErr.ErrStatus.Details = actualErr.Details
	if diff := cmp.Diff(*actualErr, expectedErr.ErrStatus); diff != "" {
		t.Fatalf("Unexpected error returned, diff: %v", diff)
	}
}

// countingKV counts Gets under one key prefix and runs reactors after them,
// like upstream's etcdClientKVWrapper.
type countingKV struct {
	clientv3.KV
	prefix   string
	gets     atomic.Int64
	reactors chan func()
}

func (c *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := c.KV.Get(ctx, key, opts...)
	if !strings.HasPrefix(key, c.prefix) {
		return resp, err
	}
	c.gets.Add(1)
	if err != nil {
		return nil, err
	}
	select {
	case reactor := <-c.reactors:
		reactor()
	default:
	}
	return resp, nil
}

// testWatchChanSync: upstream drives watchChan.sync() with the page size
// (defaultWatcherMaxLimit) lowered. Both are unexported, so the port starts a
// real watch from resource version 0 (which syncs first) and, for the
// two-page case, stores more objects than one page (maxLimit). It checks the
// initial events, the number of Gets the sync made and that an object
// created between two pages is not in the initial list but arrives once,
// afterwards, as a watch event.
func testWatchChanSync(t *testing.T, h harness) {
	testCases := []struct {
		name             string
		watchKey         string
		fill             int // extra objects sorting before the preset ones
		expectEventCount int
		expectGetCount   int64
	}{
		{
			name:           "None of the current objects match watchKey: sync with empty page",
			watchKey:       "/pods/test/",
			expectGetCount: 1,
		},
		{
			name:             "The number of current objects is less than defaultWatcherMaxLimit: sync with one page",
			watchKey:         "/pods/",
			expectEventCount: 2,
			expectGetCount:   1,
		},
		{
			name:             "a new item added to etcd before returning a second page is not returned: sync with two page",
			watchKey:         "/pods/",
			fill:             maxLimit - 1,
			expectEventCount: maxLimit + 1,
			expectGetCount:   2,
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, s := h.setup(t)
			initKeys, err := initStoreData(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if tc.fill > 0 {
				initKeys = append(initKeys, fillPods(ctx, t, s, tc.fill)...)
			}
			watchPrefix, err := s.prepareKey(tc.watchKey, true)
			if err != nil {
				t.Fatal(err)
			}
			kv := &countingKV{KV: s.client.KV, prefix: watchPrefix, reactors: make(chan func(), 1)}
			kv.reactors <- func() {
				barThird := &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "third", Name: "bar"}}
				if err := s.Create(context.Background(), "/pods/third/bar", barThird, &example.Pod{}, 0); err != nil {
					t.Errorf("failed to create object: %v", err)
				}
			}
			s.client.KV = kv

			w, err := s.Watch(ctx, tc.watchKey, storage.ListOptions{ResourceVersion: "0", Recursive: true, Predicate: storage.Everything})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()

			want := map[string]bool{}
			for _, k := range initKeys {
				if strings.HasPrefix(k, tc.watchKey) {
					want[k] = true
				}
			}
			if len(want) != tc.expectEventCount {
				t.Fatalf("harness: %d preset objects under %s, want %d", len(want), tc.watchKey, tc.expectEventCount)
			}
			for i := range tc.expectEventCount {
				key := nextEventKey(t, w, watch.Added)
				if !want[key] {
					t.Fatalf("initial event %d is for %s, which is not an object present before the watch (or a duplicate)", i, key)
				}
				delete(want, key)
			}
			// The object created during the sync comes next, as a watch event
			// (or, if it is not under the watched key, a sentinel does).
			next := "/pods/third/bar"
			if !strings.HasPrefix(next, tc.watchKey) {
				next = tc.watchKey + "sentinel"
				sentinel := &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: strings.Trim(strings.TrimPrefix(tc.watchKey, "/pods/"), "/"), Name: "sentinel"}}
				if err := s.Create(ctx, next, sentinel, &example.Pod{}, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got := nextEventKey(t, w, watch.Added); got != next {
				t.Fatalf("event after the initial ones is for %s, want %s", got, next)
			}
			if got := kv.gets.Load(); got != tc.expectGetCount {
				t.Errorf("Unexpected called times of client.KV.Get() : %v, expected: %v", got, tc.expectGetCount)
			}
		})
	}
}

// initStoreData is upstream's: two pods, returns their keys.
func initStoreData(ctx context.Context, s storage.Interface) ([]string, error) {
	var keys []string
	for _, ns := range []string{"first", "second"} {
		pod := &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bar"}}
		key := fmt.Sprintf("/pods/%s/%s", ns, "bar")
		if err := s.Create(ctx, key, pod, &example.Pod{}, 0); err != nil {
			return nil, fmt.Errorf("failed to create object: %w", err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// fillPods writes n pods under /pods/filler/ (sorting before the preset
// ones) straight through the client, 100 per transaction.
func fillPods(ctx context.Context, t *testing.T, s *testStore, n int) []string {
	t.Helper()
	var keys []string
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := s.client.KV.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("filling: %v", err)
		}
		ops = ops[:0]
	}
	for i := range n {
		pod := &example.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "filler", Name: fmt.Sprintf("pod-%05d", i)}}
		data, err := runtime.Encode(s.codec, pod)
		if err != nil {
			t.Fatal(err)
		}
		key := "/pods/filler/" + pod.Name
		etcdKey, err := s.prepareKey(key, false)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(etcdKey, defaultTestPrefix+string(data)))
		keys = append(keys, key)
		if len(ops) == 100 {
			flush()
		}
	}
	flush()
	return keys
}

func nextEventKey(t *testing.T, w watch.Interface, wantType watch.EventType) string {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		if ev.Type != wantType {
			t.Fatalf("event %s %#v, want type %s", ev.Type, ev.Object, wantType)
		}
		pod, ok := ev.Object.(*example.Pod)
		if !ok {
			t.Fatalf("event object is %T", ev.Object)
		}
		return fmt.Sprintf("/pods/%s/%s", pod.Namespace, pod.Name)
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return ""
}

// testLinearizedReadRevisionInvariant is upstream's (linearized_read_test.go):
// linearizable reads must not advance the revision.
func testLinearizedReadRevisionInvariant(t *testing.T, h harness) {
	ctx, s := h.setup(t)
	dir := "/pods/"
	key := dir + "/testkey"
	out := &example.Pod{}
	obj := &example.Pod{ObjectMeta: metav1.ObjectMeta{Name: "foo", SelfLink: "testlink"}}
	if err := s.Create(ctx, key, obj, out, 0); err != nil {
		t.Fatalf("Set failed: %v", err)
	}
	originalRevision := out.ResourceVersion
	for range 5 {
		if _, err := s.client.KV.Get(ctx, key); err != nil {
			t.Fatalf("failed to get key: %v", err)
		}
	}
	list := &example.PodList{}
	if err := s.GetList(ctx, dir, storage.ListOptions{Predicate: storage.Everything, Recursive: true}, list); err != nil {
		t.Errorf("Unexpected List error: %v", err)
	}
	if originalRevision != list.ResourceVersion {
		t.Fatalf("original revision (%s) did not match final revision after linearized reads (%s)", originalRevision, list.ResourceVersion)
	}
}

// testCompact is upstream's (compact_test.go): kube-apiserver's periodic
// compactor on a fake clock compacts one interval behind.
func testCompact(t *testing.T, h harness) {
	client := newClient(t, h.server(t, serverOptions{})).Client
	ctx := t.Context()
	clock := testingclock.NewFakeClock(time.Now())
	c := etcd3.NewCompactor(client, time.Minute, clock, nil)
	t.Cleanup(c.Stop)
	waitForClockWaiters(t, clock)

	t.Log("First compaction cycle saves revision before first write")
	clock.Step(time.Minute)
	waitForClockWaiters(t, clock)
	if compactRev := c.CompactRevision(); compactRev != 0 {
		t.Errorf("CompactRevision()=%d, expected %d", compactRev, 0)
	}

	t.Log("First write")
	putResp, err := client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatalf("Put failed: %v", err)
	}
	assertNotCompacted(ctx, t, client, putResp.Header.Revision)

	t.Log("Second compaction cycle compacts before first write")
	clock.Step(time.Minute)
	waitForClockWaiters(t, clock)
	assertNotCompacted(ctx, t, client, putResp.Header.Revision)
	if compactRev := c.CompactRevision(); compactRev != putResp.Header.Revision-1 {
		t.Errorf("CompactRevision()=%d, expected %d", compactRev, putResp.Header.Revision-1)
	}

	t.Log("Create second revision")
	putResp1, err := client.Put(ctx, "/somekey", "data2")
	if err != nil {
		t.Fatalf("Put failed: %v", err)
	}
	assertNotCompacted(ctx, t, client, putResp1.Header.Revision)

	t.Log("Third compaction cycle compacts revision after first write")
	clock.Step(time.Minute)
	waitForClockWaiters(t, clock)
	assertCompacted(ctx, t, client, putResp.Header.Revision)
	if compactRev := c.CompactRevision(); compactRev != putResp.Header.Revision+1 {
		t.Errorf("CompactRevision()=%d, expected %d", compactRev, putResp.Header.Revision+1)
	}
	assertNotCompacted(ctx, t, client, putResp1.Header.Revision)

	t.Log("Fourth compaction cycle compacts second write")
	clock.Step(time.Minute)
	waitForClockWaiters(t, clock)
	assertCompacted(ctx, t, client, putResp.Header.Revision)
	assertCompacted(ctx, t, client, putResp1.Header.Revision)
	if compactRev := c.CompactRevision(); compactRev != putResp1.Header.Revision+1 {
		t.Errorf("CompactRevision()=%d, expected %d", compactRev, putResp1.Header.Revision+1)
	}
}

// waitForClockWaiters polls (as upstream) until the compactor waits on the clock.
func waitForClockWaiters(t *testing.T, clock *testingclock.FakeClock) {
	t.Helper()
	const waitTimeout = 10 * time.Second // upstream: 100ms; generous for a loaded 2-core machine
	for start := time.Now(); time.Since(start) < waitTimeout; {
		if clock.HasWaiters() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("No waiters")
}

func assertCompacted(ctx context.Context, t *testing.T, client *clientv3.Client, rev int64) {
	t.Helper()
	if _, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev)); err != etcdrpc.ErrCompacted {
		t.Errorf("Expecting rev %d compacted, but err=%v", rev, err)
	}
}

func assertNotCompacted(ctx context.Context, t *testing.T, client *clientv3.Client, rev int64) {
	t.Helper()
	if _, err := client.Get(ctx, "/somekey", clientv3.WithRev(rev)); err != nil {
		t.Errorf("Get on rev %d failed: %v", rev, err)
	}
}

// testCompactConflict is upstream's (compact_test.go): several compactors
// racing on the compact key's version, as several kube-apiservers do.
func testCompactConflict(t *testing.T, h harness) {
	client := newClient(t, h.server(t, serverOptions{})).Client
	ctx := t.Context()

	putResp, err := client.Put(ctx, "/somekey", "data")
	if err != nil {
		t.Fatalf("Put failed: %v", err)
	}

	t.Log("First compact on time 0")
	wantCompactRev := putResp.Header.Revision
	curTime, curRev, compactRev, err := etcd3.Compact(ctx, client, 0, wantCompactRev)
	if err != nil {
		t.Fatalf("compact failed: %v", err)
	}
	if compactRev != wantCompactRev {
		t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev)
	}
	if curTime != 1 {
		t.Errorf("Expect current logical time = 1, get = %v", curTime)
	}
	wantCurrentRev := putResp.Header.Revision + 1
	if curRev != wantCurrentRev {
		t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev)
	}

	t.Log("Second compact on time 0")
	curTime2, curRev2, compactRev2, err := etcd3.Compact(ctx, client, 0, wantCompactRev+1)
	if err != nil {
		t.Fatalf("compact failed: %v", err)
	}
	if compactRev2 != wantCompactRev {
		t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev2)
	}
	if curTime != curTime2 {
		t.Errorf("Unexpected curTime (%v) != curTime2 (%v)", curTime, curTime2)
	}
	if curRev2 != wantCurrentRev {
		t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev2)
	}

	t.Log("Third compact on time 1")
	curTime3, curRev3, compactRev3, err := etcd3.Compact(ctx, client, 1, wantCompactRev+1)
	if err != nil {
		t.Fatalf("compact failed: %v", err)
	}
	wantCompactRev++
	if compactRev3 != wantCompactRev {
		t.Errorf("Expect compact revision = %d, get = %d", wantCompactRev, compactRev3)
	}
	if curTime3 != 2 {
		t.Errorf("Expect current logical time = 2, get = %v", curTime3)
	}
	wantCurrentRev++
	if curRev3 != wantCurrentRev {
		t.Errorf("Expect current revision = %d, get = %d", wantCurrentRev, curRev3)
	}
}

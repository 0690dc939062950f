package conformance

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
)

// conformanceTest is one upstream test: its name in k8s.io/apiserver's
// pkg/storage/etcd3 (source file given), the feature gates it sets, and its
// body against a store from the harness.
type conformanceTest struct {
	name   string
	source string
	gates  map[featuregate.Feature]bool
	run    func(t *testing.T, h harness)
}

// suite is every test of upstream's etcd3 store_test.go and watcher_test.go
// (plus the server-facing ones of linearized_read_test.go and
// compact_test.go), in upstream order. Tests marked "ported" reach into etcd3
// internals upstream and are rebuilt here on the public API and the raw etcd
// client (ported_test.go). Upstream tests that are not here are in
// [excludedUpstream]; TestSuiteCoversUpstream fails if one is in neither.
var suite = []conformanceTest{
	// ---- store_test.go
	{name: "TestCreate", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestCreate(ctx, t, s, checkStorageInvariants(s))
	}},
	{name: "TestCreateWithTTL", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestCreateWithTTL(ctx, t, s)
	}},
	{name: "TestCreateWithKeyExist", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestCreateWithKeyExist(ctx, t, s)
	}},
	{name: "TestGet", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGet(ctx, t, s)
	}},
	{name: "TestUnconditionalDelete", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestUnconditionalDelete(ctx, t, s)
	}},
	{name: "TestConditionalDelete", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestConditionalDelete(ctx, t, s)
	}},
	{name: "TestDeleteWithSuggestion", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDeleteWithSuggestion(ctx, t, s)
	}},
	{name: "TestDeleteWithSuggestionAndConflict", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDeleteWithSuggestionAndConflict(ctx, t, s)
	}},
	{name: "TestDeleteWithSuggestionOfDeletedObject", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDeleteWithSuggestionOfDeletedObject(ctx, t, s)
	}},
	{name: "TestValidateDeletionWithSuggestion", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestValidateDeletionWithSuggestion(ctx, t, s)
	}},
	{name: "TestValidateDeletionWithOnlySuggestionValid", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestValidateDeletionWithOnlySuggestionValid(ctx, t, s)
	}},
	{name: "TestDeleteWithConflict", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDeleteWithConflict(ctx, t, s)
	}},
	{name: "TestPreconditionalDeleteWithSuggestion", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestPreconditionalDeleteWithSuggestion(ctx, t, s)
	}},
	{name: "TestPreconditionalDeleteWithSuggestionPass", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestPreconditionalDeleteWithOnlySuggestionPass(ctx, t, s)
	}},
	{name: "TestListPaging", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestListPaging(ctx, t, s)
	}},
	{name: "TestGetListNonRecursive", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGetListNonRecursive(ctx, t, increaseRVFunc(s.client.Client), s)
	}},
	{name: "TestGetListRecursivePrefix", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGetListRecursivePrefix(ctx, t, s)
	}},
	{name: "TestKeySchema", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestKeySchema(ctx, t, s)
	}},
	{name: "TestGuaranteedUpdate", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGuaranteedUpdate(ctx, t, s, checkStorageInvariants(s))
	}},
	{name: "TestGuaranteedUpdateWithTTL", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGuaranteedUpdateWithTTL(ctx, t, s)
	}},
	{name: "TestGuaranteedUpdateChecksStoredData", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGuaranteedUpdateChecksStoredData(ctx, t, s)
	}},
	{name: "TestGuaranteedUpdateWithConflict", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGuaranteedUpdateWithConflict(ctx, t, s)
	}},
	{name: "TestGuaranteedUpdateWithSuggestionAndConflict", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestGuaranteedUpdateWithSuggestionAndConflict(ctx, t, s)
	}},
	{name: "TestTransformationFailure", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestTransformationFailure(ctx, t, s)
	}},
	{name: "TestList", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestList(ctx, t, s, compactStorage(s), false, s.client.Kubernetes.(*storagetesting.KubernetesRecorder))
	}},
	{name: "TestConsistentList", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestConsistentList(ctx, t, s, increaseRVFunc(s.client.Client), false, true, false)
	}},
	{
		name: "TestCompactRevision", source: "store_test.go",
		// The store must observe external compactions through its watch on
		// the compact key, which ListFromCacheSnapshot turns on.
		gates: map[featuregate.Feature]bool{features.ListFromCacheSnapshot: true},
		run: func(t *testing.T, h harness) {
			ctx, s := h.setup(t)
			storagetesting.RunTestCompactRevision(ctx, t, s, increaseRVFunc(s.client.Client), compactStorage(s))
		},
	},
	{name: "TestListContinuation", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestListContinuation(ctx, t, s, checkStorageCallsInvariants(s))
	}},
	{
		name: "TestListPaginationRareObject", source: "store_test.go",
		// ListFromCacheSnapshot adds a Get of the compact key, which the call
		// validation would count.
		gates: map[featuregate.Feature]bool{features.ListFromCacheSnapshot: false},
		run: func(t *testing.T, h harness) {
			ctx, s := h.setup(t)
			storagetesting.RunTestListPaginationRareObject(ctx, t, s, checkStorageCallsInvariants(s))
		},
	},
	{name: "TestListContinuationWithFilter", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestListContinuationWithFilter(ctx, t, s, checkStorageCallsInvariants(s))
	}},
	{name: "TestNamespaceScopedList", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestNamespaceScopedList(ctx, t, s)
	}},
	{name: "TestListInconsistentContinuation", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestListInconsistentContinuation(ctx, t, s, compactStorage(s))
	}},
	{name: "TestListResourceVersionMatch", source: "store_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestListResourceVersionMatch(ctx, t, s)
	}},
	{name: "TestStats", source: "store_test.go", run: func(t *testing.T, h harness) {
		for _, sizeBasedListCostEstimate := range []bool{true, false} {
			t.Run(fmt.Sprintf("SizeBasedListCostEstimate=%v", sizeBasedListCostEstimate), func(t *testing.T) {
				ctx, s := h.setup(t)
				if sizeBasedListCostEstimate {
					if err := s.EnableResourceSizeEstimation(s.getKeys); err != nil {
						t.Fatal(err)
					}
				}
				storagetesting.RunTestStats(ctx, t, s, s.codec, s.prefixTransformer, sizeBasedListCostEstimate)
			})
		}
	}},
	{name: "TestPrefix", source: "store_test.go (ported)", run: testPrefix},
	{name: "TestLeaseMaxObjectCount", source: "store_test.go (ported)", run: testLeaseMaxObjectCount},
	{name: "TestPrepareKey", source: "store_test.go (ported)", run: testPrepareKey},
	{name: "TestInvalidKeys", source: "store_test.go", run: testInvalidKeys},
	{name: "TestGetCurrentResourceVersion", source: "store_test.go", run: testGetCurrentResourceVersion},
	{name: "TestPrefixGetKeys", source: "store_test.go (ported)", run: testPrefixGetKeys},
	{name: "TestPrefixStats", source: "store_test.go (ported)", run: testPrefixStats},

	// ---- watcher_test.go
	{name: "TestWatch", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatch(ctx, t, s)
	}},
	{name: "TestClusterScopedWatch", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestClusterScopedWatch(ctx, t, s)
	}},
	{name: "TestNamespaceScopedWatch", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestNamespaceScopedWatch(ctx, t, s)
	}},
	{name: "TestDeleteTriggerWatch", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDeleteTriggerWatch(ctx, t, s)
	}},
	{name: "TestWatchFromZero", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchFromZero(ctx, t, s, compactStorage(s))
	}},
	{name: "TestWatchFromNoneZero", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchFromNonZero(ctx, t, s)
	}},
	{name: "TestDelayedWatchDelivery", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestDelayedWatchDelivery(ctx, t, s)
	}},
	{name: "TestWatchError", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchError(ctx, t, s)
	}},
	{name: "TestWatchContextCancel", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchContextCancel(ctx, t, s)
	}},
	{name: "TestWatcherTimeout", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatcherTimeout(ctx, t, s)
	}},
	{name: "TestWatchDeleteEventObjectHaveLatestRV", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchDeleteEventObjectHaveLatestRV(ctx, t, s)
	}},
	{name: "TestWatchInitializationSignal", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunTestWatchInitializationSignal(ctx, t, s)
	}},
	{name: "TestProgressNotify", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t, withProgressNotifyInterval(time.Second))
		storagetesting.RunOptionalTestProgressNotify(ctx, t, s, increaseRVFunc(s.client.Client))
	}},
	{
		name: "TestWatchWithUnsafeDelete", source: "watcher_test.go",
		gates: map[featuregate.Feature]bool{features.AllowUnsafeMalformedObjectDeletion: true},
		run: func(t *testing.T, h harness) {
			ctx, s := h.setup(t)
			storagetesting.RunTestWatchWithUnsafeDelete(ctx, t, s)
		},
	},
	{name: "TestWatchDispatchBookmarkEvents", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t, withProgressNotifyInterval(time.Second))
		storagetesting.RunTestWatchDispatchBookmarkEvents(ctx, t, s, false)
	}},
	{name: "TestSendInitialEventsBackwardCompatibility", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunSendInitialEventsBackwardCompatibility(ctx, t, s)
	}},
	{name: "TestEtcdWatchSemantics", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunWatchSemantics(ctx, t, s)
	}},
	{
		name: "TestEtcdWatchSemanticsWithConcurrentDecode", source: "watcher_test.go",
		gates: map[featuregate.Feature]bool{features.ConcurrentWatchObjectDecode: true},
		run: func(t *testing.T, h harness) {
			ctx, s := h.setup(t)
			storagetesting.RunWatchSemantics(ctx, t, s)
		},
	},
	{name: "TestEtcdWatchSemanticInitialEventsExtended", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunWatchSemanticInitialEventsExtended(ctx, t, s)
	}},
	{name: "TestWatchListMatchSingle", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunWatchListMatchSingle(ctx, t, s)
	}},
	{name: "TestWatchErrorEventIsBlockingFurtherEvent", source: "watcher_test.go", run: func(t *testing.T, h harness) {
		ctx, s := h.setup(t)
		storagetesting.RunWatchErrorIsBlockingFurtherEvents(ctx, t, s)
	}},
	{name: "TestWatchErrorIncorrectConfiguration", source: "watcher_test.go (ported)", run: testWatchErrorIncorrectConfiguration},
	{
		name: "TestTooLargeResourceVersionErrorForWatchList", source: "watcher_test.go (ported)",
		gates: map[featuregate.Feature]bool{features.WatchList: true},
		run:   testTooLargeResourceVersionErrorForWatchList,
	},
	{name: "TestWatchChanSync", source: "watcher_test.go (ported)", run: testWatchChanSync},

	// ---- other etcd3 tests that exercise the server rather than a helper
	{name: "TestLinearizedReadRevisionInvariant", source: "linearized_read_test.go", run: testLinearizedReadRevisionInvariant},
	{name: "TestCompact", source: "compact_test.go", run: testCompact},
	{name: "TestCompactConflict", source: "compact_test.go", run: testCompactConflict},
}

// excludedUpstream are the Test functions of the upstream files above that
// are not in [suite], and why.
var excludedUpstream = map[string]string{
	"Test_growSlice":          "store_test.go: unit test of a reflection helper; never talks to the server",
	"TestCompactIntervalZero": "compact_test.go: checks the compactor schedules nothing on a fake clock; never talks to the server",
}

// upstreamFiles are the etcd3 test files whose tests the suite covers.
var upstreamFiles = []string{"store_test.go", "watcher_test.go", "linearized_read_test.go", "compact_test.go"}

// runSuite runs every test of the suite, each on a fresh server from server.
func runSuite(t *testing.T, server serverFunc) {
	h := harness{server: server}
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			for gate, on := range tc.gates {
				featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, gate, on)
			}
			tc.run(t, h)
		})
	}
}

// checkStorageInvariants is upstream's: what the raw client reads back
// decodes, and carries neither resource version nor self link.
func checkStorageInvariants(s *testStore) storagetesting.KeyValidation {
	return func(ctx context.Context, t *testing.T, key string) {
		getResp, err := s.client.KV.Get(ctx, key)
		if err != nil {
			t.Fatalf("etcdClient.KV.Get failed: %v", err)
		}
		if len(getResp.Kvs) == 0 {
			t.Fatalf("expecting non empty result on key: %s", key)
		}
		decoded, err := runtime.Decode(s.codec, getResp.Kvs[0].Value[len(defaultTestPrefix):])
		if err != nil {
			t.Fatalf("expecting successful decode of object from %v\n%v", err, string(getResp.Kvs[0].Value))
		}
		obj := decoded.(*example.Pod)
		if obj.ResourceVersion != "" {
			t.Errorf("stored object should have empty resource version")
		}
		if obj.SelfLink != "" {
			t.Errorf("stored output should have empty selfLink")
		}
	}
}

// checkStorageCallsInvariants is upstream's: the number of values read and
// of Get calls a paginated list makes.
func checkStorageCallsInvariants(s *testStore) storagetesting.CallsValidation {
	transformer := s.prefixTransformer
	recorder := s.client.KV.(*storagetesting.KVRecorder)
	return func(t *testing.T, pageSize, estimatedProcessedObjects uint64) {
		if reads := transformer.GetReadsAndReset(); reads != estimatedProcessedObjects {
			t.Errorf("unexpected reads: %d, expected: %d", reads, estimatedProcessedObjects)
		}
		estimatedGetCalls := uint64(1)
		if pageSize != 0 {
			// The store doubles the page size (up to maxLimit) while pages
			// come back short: n+1 calls for the smallest n with
			// pageSize + 2*pageSize + ... + 2^n*pageSize >= objects.
			currLimit := pageSize
			for sum := uint64(1); sum < estimatedProcessedObjects; {
				currLimit *= 2
				if currLimit > maxLimit {
					currLimit = maxLimit
				}
				sum += currLimit
				estimatedGetCalls++
			}
		}
		if reads := recorder.GetReadsAndReset(); reads != estimatedGetCalls {
			t.Fatalf("unexpected reads: %d, want: %d", reads, estimatedGetCalls)
		}
	}
}

// compactStorage is upstream's: compact through the apiserver's own
// compaction transaction, then wait until the store has seen it.
func compactStorage(s *testStore) storagetesting.Compaction {
	return func(ctx context.Context, t *testing.T, resourceVersion string) {
		rv, err := s.versioner.ParseResourceVersion(resourceVersion)
		if err != nil {
			t.Fatal(err)
		}
		var currentVersion int64
		currentVersion, _, _, err = etcd3.Compact(ctx, s.client.Client, currentVersion, int64(rv))
		if err != nil {
			_, _, _, err = etcd3.Compact(ctx, s.client.Client, currentVersion, int64(rv))
		}
		if err != nil {
			t.Fatal(err)
		}
		if !utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
			return
		}
		// The store learns the compacted revision from its watch on the
		// compact key.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for s.CompactRevision() != int64(rv) {
			select {
			case <-ctx.Done():
				t.Fatalf("store never observed compaction at %d (has %d): %v", rv, s.CompactRevision(), ctx.Err())
			case <-tick.C:
			}
		}
	}
}

// increaseRVFunc is upstream's: one unrelated write.
func increaseRVFunc(client *clientv3.Client) storagetesting.IncreaseRVFunc {
	return func(ctx context.Context, t *testing.T) int64 {
		resp, err := client.KV.Put(ctx, "increaseRV", "ok")
		if err != nil {
			t.Fatalf("Could not update increaseRV: %v", err)
		}
		return resp.Header.Revision
	}
}

var _ storage.Interface = (*testStore)(nil)

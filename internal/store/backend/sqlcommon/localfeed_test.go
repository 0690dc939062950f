package sqlcommon

import (
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

func TestLocalFeed(t *testing.T) {
	var f localFeed
	ev := func(rev int64) []backend.Event {
		return []backend.Event{{KV: backend.KeyValue{Key: []byte("k"), ModRevision: rev}}}
	}
	a := f.begin(1, 3, ev(3), 10)
	if lb := f.next(2); lb != a {
		t.Fatalf("next(2) = %v, want the batch 2-3", lb)
	}
	select {
	case <-a.done:
		t.Fatal("batch done before finish")
	default:
	}
	f.finish(a, true)
	if !a.ok {
		t.Fatal("committed batch not ok")
	}
	// A batch that did not commit is dropped; its revisions are then
	// served by the database (next finds nothing).
	b := f.begin(3, 5, ev(5), 10)
	f.finish(b, false)
	if lb := f.next(4); lb != nil {
		t.Fatalf("next(4) after a failed batch = %+v, want nil", lb)
	}
	// The revisions are taken again by the next batch.
	c := f.begin(3, 4, ev(4), 10)
	f.finish(c, true)
	if lb := f.next(4); lb != c || lb.to != 4 {
		t.Fatalf("next(4) = %+v, want the batch 4-4", lb)
	}
	if lb := f.next(3); lb != nil {
		t.Fatalf("next(3) = %+v: no batch starts there", lb)
	}
	if f.next(2) != a {
		t.Fatal("older batch lost")
	}
	// Going backwards drops everything older.
	d := f.begin(1, 2, ev(2), 10)
	f.finish(d, true)
	if f.next(4) != nil || f.next(2) != d {
		t.Fatal("a batch below the newest did not reset the feed")
	}
	// Bounds.
	for i := range int64(localFeedMaxBatches + 10) {
		f.finish(f.begin(10+i, 11+i, ev(11+i), 1), true)
	}
	if len(f.batches) != localFeedMaxBatches {
		t.Fatalf("%d batches kept, want %d", len(f.batches), localFeedMaxBatches)
	}
	if f.next(11) != nil {
		t.Fatal("oldest batch not evicted")
	}
	if f.begin(1000, 1001, ev(1001), localFeedMaxBytes) != nil {
		t.Fatal("a batch larger than a quarter of the budget was recorded")
	}
}

// fill must keep what the cache already holds: an overlapped batch's
// prefetch may predate the previous batch's writes.
func TestFillKeepsCachedEntries(t *testing.T) {
	var c writeCache
	c.reset(5)
	newer := backend.KeyValue{Key: []byte("a"), Value: []byte("new"), ModRevision: 5, CreateRevision: 5, Version: 1}
	c.set(newer.Key, cacheEntry{kv: newer, exists: true}, false)
	stale := backend.KeyValue{Key: []byte("a"), Value: []byte("old"), ModRevision: 3, CreateRevision: 3, Version: 1}
	other := backend.KeyValue{Key: []byte("b"), Value: []byte("b"), ModRevision: 2, CreateRevision: 2, Version: 1}
	c.fill([][]byte{[]byte("a"), []byte("b"), []byte("c")}, []backend.KeyValue{stale, other})
	if e := c.m["a"]; !e.exists || string(e.kv.Value) != "new" {
		t.Fatalf("a = %+v, want the cached newer version", e)
	}
	if e := c.m["b"]; !e.exists || string(e.kv.Value) != "b" {
		t.Fatalf("b = %+v, want the prefetched version", e)
	}
	if e, ok := c.m["c"]; !ok || e.exists {
		t.Fatalf("c = %+v (known %v), want known absent", e, ok)
	}
	// A key known absent stays absent even if a stale prefetch found it.
	c.set([]byte("d"), cacheEntry{}, false)
	c.fill([][]byte{[]byte("d")}, []backend.KeyValue{{Key: []byte("d"), Value: []byte("x"), ModRevision: 1, CreateRevision: 1, Version: 1}})
	if e := c.m["d"]; e.exists {
		t.Fatal("stale prefetch overwrote a known absence")
	}
}

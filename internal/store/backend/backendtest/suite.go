package backendtest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Opener opens a new, empty engine. The suite closes it (a second Close
// after the suite's own may return an error, which is ignored).
type Opener func(t *testing.T) backend.Backend

// PersistentOpener opens the engine whose storage is identified by dir
// (a directory for file engines; SQL engines may map it to a database).
// Opening the same dir again after Close must find everything committed.
type PersistentOpener func(t *testing.T, dir string) backend.Backend

type testCase struct {
	name string
	fn   func(t *testing.T, open Opener)
}

var cases = []testCase{
	{"Empty", testEmpty},
	{"PutGet", testPutGet},
	{"BinaryKeysAndOrder", testBinaryKeys},
	{"RangeSelection", testRangeSelection},
	{"LimitCountMore", testLimit},
	{"KeysOnlyCountOnly", testKeysOnlyCountOnly},
	{"History", testHistory},
	{"MultiEventRevision", testMultiEvent},
	{"EventsPrevKV", testEventsPrevKV},
	{"ApplyValidation", testApplyValidation},
	{"WriteTxSeesOwnWrites", testWriteTxOwnWrites},
	{"FailedUpdateDiscarded", testFailedUpdate},
	{"ConcurrentUpdates", testConcurrentUpdates},
	{"ConcurrentReadModifyWrite", testConcurrentRMW},
	{"ConcurrentFailingUpdates", testConcurrentFailing},
	{"ViewSeesOnlyCommitted", testViewOnlyCommitted},
	{"WatchLive", testWatchLive},
	{"WatchReplay", testWatchReplay},
	{"WatchConcurrentSubscribe", testWatchConcurrentSubscribe},
	{"Compact", testCompact},
	{"Leases", testLeases},
	{"LeaseKeys", testLeaseKeys},
	{"Close", testClose},
}

// Run runs the contract suite; each subtest opens its own engine.
func Run(t *testing.T, open Opener) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, openClosing(open)) })
	}
}

// RunPersistent runs Run on engines in fresh directories, then the reopen
// tests.
func RunPersistent(t *testing.T, open PersistentOpener) {
	t.Helper()
	Run(t, func(t *testing.T) backend.Backend { return open(t, t.TempDir()) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ReopenEmpty", func(t *testing.T) { testReopenEmpty(t, open) })
}

func openClosing(open Opener) Opener {
	return func(t *testing.T) backend.Backend {
		b := open(t)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
}

func testEmpty(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	if base != 1 {
		t.Fatalf("empty engine at revision %d, want 1 (as etcd: kube-apiserver rejects resource version 0)", base)
	}
	res := mustRange(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	if len(res.KVs) != 0 || res.Count != 0 || res.More {
		t.Errorf("empty engine range: %d KVs, count %d, more %v", len(res.KVs), res.Count, res.More)
	}
	if res.Revision != base {
		t.Errorf("range revision %d, want %d", res.Revision, base)
	}
	st, err := b.Status(testCtx(t))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Revision != base || st.Engine == "" {
		t.Errorf("status %+v, want revision %d and an engine name", st, base)
	}
	evs, err := b.Events(testCtx(t), base+1, base+10)
	if err != nil || len(evs) != 0 {
		t.Errorf("events on empty engine: %v, %v", evs, err)
	}
}

func testPutGet(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	rev := Write(t, b, Put("foo", "bar"))
	if rev != base+1 {
		t.Fatalf("first write at %d, want %d", rev, base+1)
	}
	if got := CurrentRev(t, b); got != rev {
		t.Fatalf("revision after write %d, want %d", got, rev)
	}
	kv, ok := get(t, b, "foo", 0)
	if !ok {
		t.Fatal("foo missing")
	}
	checkKV(t, "foo", kv, backend.KeyValue{Key: []byte("foo"), Value: []byte("bar"), CreateRevision: rev, ModRevision: rev, Version: 1})
	if _, ok := get(t, b, "fo", 0); ok {
		t.Error("fo exists")
	}
	if _, ok := get(t, b, "foo\x00", 0); ok {
		t.Error("foo\\x00 exists")
	}
	rev2 := Write(t, b, Put("foo", "baz"))
	kv, _ = get(t, b, "foo", 0)
	checkKV(t, "foo after overwrite", kv, backend.KeyValue{Key: []byte("foo"), Value: []byte("baz"), CreateRevision: rev, ModRevision: rev2, Version: 2})
	// Empty value.
	rev3 := Write(t, b, Put("empty", ""))
	kv, ok = get(t, b, "empty", 0)
	if !ok || len(kv.Value) != 0 || kv.ModRevision != rev3 {
		t.Errorf("empty value: %s, %v", kvString(&kv), ok)
	}
	st, err := b.Status(testCtx(t))
	if err != nil || st.Revision != rev3 {
		t.Errorf("status revision %d (%v), want %d", st.Revision, err, rev3)
	}
}

var binaryKeys = []string{
	"\x00", "\x00\x00", "\x00\x01", "\x01", "a", "a\x00", "a\x00b", "a\x01", "a\xff", "ab", "b",
	"\x7f", "\x80", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff",
}

func testBinaryKeys(t *testing.T, open Opener) {
	b := open(t)
	// Write in reverse order so that insertion order differs from key order.
	vals := map[string][]byte{}
	for i := len(binaryKeys) - 1; i >= 0; i-- {
		k := binaryKeys[i]
		v := []byte{0, 0xff, byte(i), 0, '\n', 0xfe}
		vals[k] = v
		Write(t, b, Op{Key: []byte(k), Value: v})
	}
	big := bytes.Repeat([]byte{0, 1, 0xff, 0x80}, 64<<10) // 256 KiB
	Write(t, b, Op{Key: []byte("big\x00\xff"), Value: big})
	vals["big\x00\xff"] = big
	want := slices.Sorted(func(yield func(string) bool) {
		for k := range vals {
			if !yield(k) {
				return
			}
		}
	})
	res := mustRange(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	if got := keysOf(res.KVs); !slices.Equal(got, want) {
		t.Fatalf("keys in order:\n got %q\nwant %q", got, want)
	}
	if res.Count != int64(len(want)) {
		t.Errorf("count %d, want %d", res.Count, len(want))
	}
	for _, kv := range res.KVs {
		if !bytes.Equal(kv.Value, vals[string(kv.Key)]) {
			t.Errorf("value of %q differs (len %d, want %d)", kv.Key, len(kv.Value), len(vals[string(kv.Key)]))
		}
	}
	// Single-key reads of binary keys, and a range bounded by binary keys.
	for _, k := range []string{"\x00", "a\x00", "\xff\xff"} {
		if kv, ok := get(t, b, k, 0); !ok || !bytes.Equal(kv.Value, vals[k]) {
			t.Errorf("get %q: %v %s", k, ok, kvString(&kv))
		}
	}
	res = mustRange(t, b, backend.RangeOptions{Key: []byte("a\x00"), End: []byte("a\xff")})
	if got, want := keysOf(res.KVs), []string{"a\x00", "a\x00b", "a\x01", "ab"}; !slices.Equal(got, want) {
		t.Errorf("range [a\\x00, a\\xff): %q, want %q", got, want)
	}
	res = mustRange(t, b, backend.RangeOptions{Key: []byte("\xff"), End: []byte{0}})
	if got, want := keysOf(res.KVs), []string{"\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff"}; !slices.Equal(got, want) {
		t.Errorf("range from \\xff: %q, want %q", got, want)
	}
}

func testRangeSelection(t *testing.T, open Opener) {
	b := open(t)
	keys := []string{"a", "b", "c", "foo", "foo/", "foo/a", "foo/b", "foo0", "fop", "z"}
	for _, k := range keys {
		Write(t, b, Put(k, "v-"+k))
	}
	Write(t, b, Del("c"))
	tests := []struct {
		name     string
		key, end string
		endNil   bool
		want     []string
	}{
		{name: "single", key: "foo", endNil: true, want: []string{"foo"}},
		{name: "single missing", key: "fo", endNil: true, want: nil},
		{name: "single deleted", key: "c", endNil: true, want: nil},
		{name: "half-open", key: "a", end: "c", want: []string{"a", "b"}},
		{name: "end excluded", key: "b", end: "foo", want: []string{"b"}},
		{name: "prefix", key: "foo/", end: "foo0", want: []string{"foo/", "foo/a", "foo/b"}},
		{name: "from key", key: "foo0", end: "\x00", want: []string{"foo0", "fop", "z"}},
		{name: "all", key: "\x00", end: "\x00", want: keysExcept(keys, "c")},
		{name: "end before key", key: "z", end: "a", want: nil},
		{name: "end equals key", key: "b", end: "b", want: nil},
		{name: "past the end", key: "zz", end: "\x00", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := backend.RangeOptions{Key: []byte(tt.key)}
			if !tt.endNil {
				opts.End = []byte(tt.end)
			}
			res := mustRange(t, b, opts)
			if got := keysOf(res.KVs); !slices.Equal(got, tt.want) && len(got)+len(tt.want) > 0 {
				t.Errorf("keys %q, want %q", got, tt.want)
			}
			if res.Count != int64(len(tt.want)) || res.More {
				t.Errorf("count %d more %v, want %d false", res.Count, res.More, len(tt.want))
			}
			for _, kv := range res.KVs {
				if string(kv.Value) != "v-"+string(kv.Key) {
					t.Errorf("value of %q: %q", kv.Key, kv.Value)
				}
			}
		})
	}
}

func keysExcept(keys []string, drop string) []string {
	var out []string
	for _, k := range keys {
		if k != drop {
			out = append(out, k)
		}
	}
	return out
}

func testLimit(t *testing.T, open Opener) {
	b := open(t)
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		Write(t, b, Put(k, k))
	}
	Write(t, b, Del("k3"))
	all := backend.RangeOptions{Key: []byte("k"), End: []byte("l")}
	tests := []struct {
		limit    int64
		want     []string
		wantMore bool
	}{
		{0, []string{"k1", "k2", "k4", "k5"}, false},
		{1, []string{"k1"}, true},
		{3, []string{"k1", "k2", "k4"}, true},
		{4, []string{"k1", "k2", "k4", "k5"}, false},
		{10, []string{"k1", "k2", "k4", "k5"}, false},
	}
	for _, tt := range tests {
		opts := all
		opts.Limit = tt.limit
		res := mustRange(t, b, opts)
		if got := keysOf(res.KVs); !slices.Equal(got, tt.want) || res.Count != 4 || res.More != tt.wantMore {
			t.Errorf("limit %d: keys %q count %d more %v, want %q 4 %v", tt.limit, got, res.Count, res.More, tt.want, tt.wantMore)
		}
	}
	// Limit at a past revision counts the keys of that revision.
	opts := all
	opts.Limit = 2
	opts.Revision = CurrentRev(t, b) - 1 // before the delete of k3
	res := mustRange(t, b, opts)
	if got := keysOf(res.KVs); !slices.Equal(got, []string{"k1", "k2"}) || res.Count != 5 || !res.More {
		t.Errorf("limit 2 at past revision: keys %q count %d more %v", got, res.Count, res.More)
	}
}

func testKeysOnlyCountOnly(t *testing.T, open Opener) {
	b := open(t)
	r1 := Write(t, b, Put("a", "1"))
	r2 := Write(t, b, Put("b", "22"), Put("c", "333"))
	res := mustRange(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{0}, KeysOnly: true})
	if got := keysOf(res.KVs); !slices.Equal(got, []string{"a", "b", "c"}) || res.Count != 3 {
		t.Fatalf("keys only: %q count %d", got, res.Count)
	}
	for _, kv := range res.KVs {
		if kv.Value != nil {
			t.Errorf("keys only: %q has value %q", kv.Key, kv.Value)
		}
	}
	checkKV(t, "keys only a", res.KVs[0], backend.KeyValue{Key: []byte("a"), CreateRevision: r1, ModRevision: r1, Version: 1})
	checkKV(t, "keys only c", res.KVs[2], backend.KeyValue{Key: []byte("c"), CreateRevision: r2, ModRevision: r2, Version: 1})
	res = mustRange(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{0}, CountOnly: true})
	if len(res.KVs) != 0 || res.Count != 3 {
		t.Errorf("count only: %d KVs count %d", len(res.KVs), res.Count)
	}
	res = mustRange(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{0}, CountOnly: true, Revision: r1})
	if len(res.KVs) != 0 || res.Count != 1 {
		t.Errorf("count only at %d: %d KVs count %d", r1, len(res.KVs), res.Count)
	}
}

func testHistory(t *testing.T, open Opener) {
	b := open(t)
	r1 := Write(t, b, Put("k", "v1"))
	r2 := Write(t, b, Put("k", "v2"))
	r3 := Write(t, b, Del("k"))
	r4 := Write(t, b, Put("k", "v3"))
	r5 := Write(t, b, Put("other", "x"))
	k := []byte("k")
	tests := []struct {
		rev  int64
		want *backend.KeyValue
	}{
		{r1 - 1, nil},
		{r1, &backend.KeyValue{Key: k, Value: []byte("v1"), CreateRevision: r1, ModRevision: r1, Version: 1}},
		{r2, &backend.KeyValue{Key: k, Value: []byte("v2"), CreateRevision: r1, ModRevision: r2, Version: 2}},
		{r3, nil},
		{r4, &backend.KeyValue{Key: k, Value: []byte("v3"), CreateRevision: r4, ModRevision: r4, Version: 1}},
		{r5, &backend.KeyValue{Key: k, Value: []byte("v3"), CreateRevision: r4, ModRevision: r4, Version: 1}},
		{0, &backend.KeyValue{Key: k, Value: []byte("v3"), CreateRevision: r4, ModRevision: r4, Version: 1}},
	}
	for _, tt := range tests {
		if tt.rev <= 0 && tt.want == nil {
			continue // the engine started at revision 0 or 1
		}
		res := mustRange(t, b, backend.RangeOptions{Key: k, Revision: tt.rev})
		var got *backend.KeyValue
		if len(res.KVs) > 0 {
			got = &res.KVs[0]
		}
		if !kvEqual(got, tt.want) {
			t.Errorf("k at %d: %s, want %s", tt.rev, kvString(got), kvString(tt.want))
		}
		wantRev := tt.rev
		if wantRev == 0 {
			wantRev = r5
		}
		if res.Revision != wantRev {
			t.Errorf("range at %d reports revision %d", tt.rev, res.Revision)
		}
	}
	// Ranges over several keys at a past revision.
	res := mustRange(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{0}, Revision: r3})
	if res.Count != 0 {
		t.Errorf("all keys at %d: count %d, want 0", r3, res.Count)
	}
	_, err := Range(t, b, backend.RangeOptions{Key: k, Revision: r5 + 1})
	wantErr(t, "range at future revision", err, backend.ErrFutureRevision)
	_, err = Range(t, b, backend.RangeOptions{Key: k, End: []byte{0}, Revision: r5 + 100})
	wantErr(t, "range at far future revision", err, backend.ErrFutureRevision)
}

func testMultiEvent(t *testing.T, open Opener) {
	b := open(t)
	Write(t, b, Put("x", "0"))
	rev := Write(t, b, Put("a", "1"), Put("b", "2"), Del("x"), Put("c", "3"))
	evs, err := b.Events(testCtx(t), rev, rev)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events at %d, want 4", len(evs), rev)
	}
	wantKeys := []string{"a", "b", "x", "c"}
	for i, ev := range evs {
		if string(ev.KV.Key) != wantKeys[i] || ev.KV.ModRevision != rev {
			t.Errorf("event %d: %s, want key %q at %d", i, eventString(ev), wantKeys[i], rev)
		}
	}
	if evs[2].Type != backend.EventDelete {
		t.Errorf("event 2 type %d, want delete", evs[2].Type)
	}
	res := mustRange(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{0}})
	if got := keysOf(res.KVs); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("keys %q", got)
	}
	for _, kv := range res.KVs {
		if kv.ModRevision != rev || kv.CreateRevision != rev {
			t.Errorf("%s: want mod = create = %d", kvString(&kv), rev)
		}
	}
}

func testEventsPrevKV(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	var want []backend.Event
	write := func(ops ...Op) {
		t.Helper()
		// An engine may run fn more than once: keep the last run's events.
		var evs []backend.Event
		err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
			var err error
			if evs, err = Events(testCtx(t), tx, ops); err != nil {
				return err
			}
			return tx.Apply(testCtx(t), tx.Revision()+1, evs)
		})
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		want = append(want, evs...)
	}
	write(Put("a", "1"))
	write(Put("a", "2"))
	write(PutWithLease("b", "\x00\xff", 0))
	write(Del("a"))
	write(Put("a", "3"), Del("b"))
	write(Put("c", ""))
	write(Put("c", "x"))
	cur := CurrentRev(t, b)
	evs, err := b.Events(testCtx(t), base+1, cur)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	checkEvents(t, "all events", evs, want)
	// Sub-ranges and clamping.
	evs, err = b.Events(testCtx(t), base+2, base+4)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	checkEvents(t, "events base+2..base+4", evs, want[1:4])
	evs, err = b.Events(testCtx(t), cur, cur+100)
	if err != nil {
		t.Fatalf("events beyond current: %v", err)
	}
	checkEvents(t, "events to beyond current", evs, want[len(want)-1:])
	evs, err = b.Events(testCtx(t), cur+1, cur+5)
	if err != nil || len(evs) != 0 {
		t.Errorf("events after current: %d, %v", len(evs), err)
	}
}

func testApplyValidation(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	ev := func(rev int64) []backend.Event {
		return []backend.Event{{Type: backend.EventPut, KV: backend.KeyValue{
			Key: []byte("k"), Value: []byte("v"), CreateRevision: rev, ModRevision: rev, Version: 1}}}
	}
	for _, rev := range []int64{base, base + 2} {
		err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
			return tx.Apply(testCtx(t), rev, ev(rev))
		})
		if err == nil {
			t.Errorf("apply at revision %d (current %d) succeeded", rev, base)
		}
	}
	err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
		bad := ev(base + 1)
		bad[0].KV.ModRevision = base + 2
		return tx.Apply(testCtx(t), base+1, bad)
	})
	if err == nil {
		t.Error("apply with an event at another revision succeeded")
	}
	if got := CurrentRev(t, b); got != base {
		t.Errorf("revision %d after rejected applies, want %d", got, base)
	}
	if _, ok := get(t, b, "k", 0); ok {
		t.Error("rejected apply left a key")
	}
	// Two revisions in one Update.
	err = b.Update(testCtx(t), func(tx backend.WriteTx) error {
		if _, err := ApplyOps(testCtx(t), tx, Put("k", "1")); err != nil {
			return err
		}
		_, err := ApplyOps(testCtx(t), tx, Put("k", "2"))
		return err
	})
	if err != nil {
		t.Fatalf("two applies in one update: %v", err)
	}
	kv, _ := get(t, b, "k", 0)
	checkKV(t, "k after two applies", kv, backend.KeyValue{Key: []byte("k"), Value: []byte("2"), CreateRevision: base + 1, ModRevision: base + 2, Version: 2})
}

func testWriteTxOwnWrites(t *testing.T, open Opener) {
	b := open(t)
	Write(t, b, Put("a", "old"))
	base := CurrentRev(t, b)
	err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
		ctx := testCtx(t)
		if tx.Revision() != base {
			return fmt.Errorf("tx revision %d, want %d", tx.Revision(), base)
		}
		if _, err := ApplyOps(ctx, tx, Put("a", "new"), Put("b", "1")); err != nil {
			return err
		}
		if tx.Revision() != base+1 {
			return fmt.Errorf("tx revision after apply %d, want %d", tx.Revision(), base+1)
		}
		res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("a"), End: []byte{0}})
		if err != nil {
			return err
		}
		if got := keysOf(res.KVs); !slices.Equal(got, []string{"a", "b"}) || string(res.KVs[0].Value) != "new" {
			return fmt.Errorf("tx range after apply: %q", got)
		}
		res, err = tx.Range(ctx, backend.RangeOptions{Key: []byte("a"), Revision: base})
		if err != nil {
			return err
		}
		if len(res.KVs) != 1 || string(res.KVs[0].Value) != "old" {
			return fmt.Errorf("tx range at previous revision: %v", keysOf(res.KVs))
		}
		if err := tx.PutLease(ctx, backend.Lease{ID: 5, TTL: 10}); err != nil {
			return err
		}
		if l, err := tx.Lease(ctx, 5); err != nil || l.TTL != 10 {
			return fmt.Errorf("tx lease after put: %+v, %v", l, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var errBoom = errors.New("boom")

func testFailedUpdate(t *testing.T, open Opener) {
	b := open(t)
	Write(t, b, Put("keep", "1"))
	Write(t, b, PutWithLease("leased", "1", 0))
	base := CurrentRev(t, b)
	err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
		ctx := testCtx(t)
		if _, err := ApplyOps(ctx, tx, Put("keep", "2"), Put("new", "x"), Del("leased")); err != nil {
			return err
		}
		if err := tx.PutLease(ctx, backend.Lease{ID: 9, TTL: 60}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "failing update", err, errBoom)
	if got := CurrentRev(t, b); got != base {
		t.Fatalf("revision %d after failed update, want %d", got, base)
	}
	if kv, _ := get(t, b, "keep", 0); string(kv.Value) != "1" || kv.Version != 1 {
		t.Errorf("keep after failed update: %s", kvString(&kv))
	}
	if _, ok := get(t, b, "new", 0); ok {
		t.Error("failed update created a key")
	}
	if _, ok := get(t, b, "leased", 0); !ok {
		t.Error("failed update deleted a key")
	}
	err = b.View(testCtx(t), func(tx backend.ReadTx) error {
		_, err := tx.Lease(testCtx(t), 9)
		wantErr(t, "lease of failed update", err, backend.ErrLeaseNotFound)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := b.Events(testCtx(t), base+1, base+1)
	if err != nil || len(evs) != 0 {
		t.Errorf("events after failed update: %d, %v", len(evs), err)
	}
	// The next update reuses the revision.
	rev := Write(t, b, Put("keep", "3"))
	if rev != base+1 {
		t.Errorf("revision after failed update %d, want %d", rev, base+1)
	}
	kv, _ := get(t, b, "keep", 0)
	checkKV(t, "keep", kv, backend.KeyValue{Key: []byte("keep"), Value: []byte("3"), CreateRevision: base - 1, ModRevision: base + 1, Version: 2})
}

func testConcurrentUpdates(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	const workers, each = 100, 5
	feed, _ := startWatch(t, b, base)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
					_, err := ApplyOps(testCtx(t), tx, Put(fmt.Sprintf("w%03d/%d", w, i), fmt.Sprint(w*each+i)))
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent update: %v", err)
	}
	final := base + workers*each
	if got := CurrentRev(t, b); got != final {
		t.Fatalf("revision %d after %d updates, want %d", got, workers*each, final)
	}
	evs, err := b.Events(testCtx(t), base+1, final)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if len(evs) != workers*each {
		t.Fatalf("%d events, want %d", len(evs), workers*each)
	}
	seen := map[string]bool{}
	for i, ev := range evs {
		if ev.KV.ModRevision != base+1+int64(i) {
			t.Fatalf("event %d at revision %d, want %d", i, ev.KV.ModRevision, base+1+int64(i))
		}
		seen[string(ev.KV.Key)] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct keys in events, want %d", len(seen), workers*each)
	}
	res := mustRange(t, b, backend.RangeOptions{Key: []byte("w"), End: []byte("x"), CountOnly: true})
	if res.Count != workers*each {
		t.Errorf("count %d, want %d", res.Count, workers*each)
	}
	checkFeed(t, feed.waitRev(t, final), base+1, final)
}

func testConcurrentRMW(t *testing.T, open Opener) {
	b := open(t)
	base := Write(t, b, Put("counter", "0"))
	const workers = 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			errs <- b.Update(testCtx(t), func(tx backend.WriteTx) error {
				res, err := tx.Range(testCtx(t), backend.RangeOptions{Key: []byte("counter")})
				if err != nil {
					return err
				}
				var n int
				if _, err := fmt.Sscan(string(res.KVs[0].Value), &n); err != nil {
					return err
				}
				_, err = ApplyOps(testCtx(t), tx, Put("counter", fmt.Sprint(n+1)))
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("update: %v", err)
		}
	}
	kv, _ := get(t, b, "counter", 0)
	checkKV(t, "counter", kv, backend.KeyValue{Key: []byte("counter"), Value: []byte(fmt.Sprint(workers)),
		CreateRevision: base, ModRevision: base + workers, Version: workers + 1})
}

func testConcurrentFailing(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	const workers = 100
	fails := func(w int) bool { return w%3 == 0 }

	// A reader checks continuously that no failed write is ever visible.
	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		readerDone <- func() error {
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				err := b.View(testCtx(t), func(tx backend.ReadTx) error {
					res, err := tx.Range(testCtx(t), backend.RangeOptions{Key: []byte("fail/"), End: []byte("fail0")})
					if err != nil {
						return err
					}
					if res.Count != 0 {
						return fmt.Errorf("failed write visible: %q", keysOf(res.KVs))
					}
					if _, err := tx.Lease(testCtx(t), 1000); !errors.Is(err, backend.ErrLeaseNotFound) {
						return fmt.Errorf("failed lease visible: %v", err)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
		}()
	}()

	var wg sync.WaitGroup
	results := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			results[w] = b.Update(testCtx(t), func(tx backend.WriteTx) error {
				ctx := testCtx(t)
				if fails(w) {
					if _, err := ApplyOps(ctx, tx, Put(fmt.Sprintf("fail/%03d", w), "x"), Put("shared", fmt.Sprint(w))); err != nil {
						return err
					}
					if err := tx.PutLease(ctx, backend.Lease{ID: 1000, TTL: 1}); err != nil {
						return err
					}
					return fmt.Errorf("worker %d: %w", w, errBoom)
				}
				_, err := ApplyOps(ctx, tx, Put(fmt.Sprintf("ok/%03d", w), "x"))
				return err
			})
		})
	}
	wg.Wait()
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	okCount := 0
	for w, err := range results {
		if fails(w) {
			wantErr(t, fmt.Sprintf("worker %d", w), err, errBoom)
			continue
		}
		okCount++
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	final := base + int64(okCount)
	if got := CurrentRev(t, b); got != final {
		t.Fatalf("revision %d, want %d", got, final)
	}
	evs, err := b.Events(testCtx(t), base+1, final)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != okCount {
		t.Fatalf("%d events, want %d", len(evs), okCount)
	}
	for i, ev := range evs {
		if ev.KV.ModRevision != base+1+int64(i) || !bytes.HasPrefix(ev.KV.Key, []byte("ok/")) {
			t.Errorf("event %d: %s", i, eventString(ev))
		}
	}
	if _, ok := get(t, b, "shared", 0); ok {
		t.Error("a failed update's key is visible")
	}
}

func testViewOnlyCommitted(t *testing.T, open Opener) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			b := open(t)
			Write(t, b, Put("pending", "old"))
			base := CurrentRev(t, b)
			applied := make(chan struct{})
			release := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				var once sync.Once
				done <- b.Update(testCtx(t), func(tx backend.WriteTx) error {
					if _, err := ApplyOps(testCtx(t), tx, Put("pending", "new"), Put("pending2", "x")); err != nil {
						once.Do(func() { close(applied) })
						return err
					}
					// An engine may dry-run fn first (the SQL engines' probe,
					// whose writes are discarded): only a run that reads its
					// own write back holds the update pending.
					res, err := tx.Range(testCtx(t), backend.RangeOptions{Key: []byte("pending2")})
					if err != nil || len(res.KVs) == 0 {
						return err
					}
					once.Do(func() { close(applied) })
					<-release
					if fail {
						return errBoom
					}
					return nil
				})
			}()
			<-applied
			err := b.View(testCtx(t), func(tx backend.ReadTx) error {
				if tx.Revision() != base {
					t.Errorf("view revision %d during a pending update, want %d", tx.Revision(), base)
				}
				res, err := tx.Range(testCtx(t), backend.RangeOptions{Key: []byte("pending"), End: []byte("pending\xff")})
				if err != nil {
					return err
				}
				if len(res.KVs) != 1 || string(res.KVs[0].Value) != "old" || res.Count != 1 {
					t.Errorf("view sees uncommitted state: %q count %d", keysOf(res.KVs), res.Count)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if evs, err := b.Events(testCtx(t), base+1, base+1); err != nil || len(evs) != 0 {
				t.Errorf("events during a pending update: %d, %v", len(evs), err)
			}
			close(release)
			err = <-done
			if fail {
				wantErr(t, "update", err, errBoom)
				if kv, _ := get(t, b, "pending", 0); string(kv.Value) != "old" {
					t.Errorf("after failed update: %s", kvString(&kv))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kv, _ := get(t, b, "pending", 0); string(kv.Value) != "new" || kv.ModRevision != base+1 {
				t.Errorf("after update: %s", kvString(&kv))
			}
		})
	}
}

func testWatchLive(t *testing.T, open Opener) {
	b := open(t)
	Write(t, b, Put("before", "x"))
	base := CurrentRev(t, b)
	feed, _ := startWatch(t, b, base)
	var want []backend.Event
	for i := range 20 {
		ops := []Op{Put(fmt.Sprintf("k%d", i%4), fmt.Sprint(i))}
		if i%5 == 4 {
			ops = append(ops, Del(fmt.Sprintf("k%d", (i+1)%4)))
		}
		var evs []backend.Event // the last run's (fn may run more than once)
		err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
			var err error
			if evs, err = Events(testCtx(t), tx, ops); err != nil {
				return err
			}
			return tx.Apply(testCtx(t), tx.Revision()+1, evs)
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, evs...)
	}
	final := CurrentRev(t, b)
	got := checkFeed(t, feed.waitRev(t, final), base+1, final)
	checkEvents(t, "watched events", got, want)
}

func testWatchReplay(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	var want []backend.Event
	for i := range 30 {
		var evs []backend.Event // the last run's (fn may run more than once)
		err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
			var err error
			if evs, err = Events(testCtx(t), tx, []Op{Put(fmt.Sprintf("k%d", i%7), fmt.Sprint(i))}); err != nil {
				return err
			}
			return tx.Apply(testCtx(t), tx.Revision()+1, evs)
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, evs...)
	}
	mid := CurrentRev(t, b)
	for _, after := range []int64{base, base + 10, mid} {
		t.Run(fmt.Sprintf("after=%d", after-base), func(t *testing.T) {
			feed, cancel := startWatch(t, b, after)
			defer cancel()
			if after < mid {
				got := checkFeed(t, feed.waitRev(t, mid), after+1, mid)
				checkEvents(t, "replayed events", got, want[after-base:])
			}
			// Then live.
			rev := Write(t, b, Put(fmt.Sprintf("live%d", after), "x"))
			batches := feed.waitRev(t, rev)
			got := checkFeed(t, batches, after+1, rev)
			if last := got[len(got)-1]; string(last.KV.Key) != fmt.Sprintf("live%d", after) {
				t.Errorf("last event %s", eventString(last))
			}
			mid = rev
			want = append(want, got[len(got)-1])
		})
	}
	// A watch from a future revision delivers nothing until then.
	cur := CurrentRev(t, b)
	feed, _ := startWatch(t, b, cur+2)
	Write(t, b, Put("f1", "x"))
	Write(t, b, Put("f2", "x"))
	r := Write(t, b, Put("f3", "x"))
	checkFeed(t, feed.waitRev(t, r), cur+3, r)
}

func testWatchConcurrentSubscribe(t *testing.T, open Opener) {
	b := open(t)
	base := CurrentRev(t, b)
	const writers, each = 10, 20
	var wg sync.WaitGroup
	started := make(chan struct{})
	var startOnce sync.Once
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				Write(t, b, Put(fmt.Sprintf("w%d/%d", w, i), "x"))
				if i == each/4 {
					startOnce.Do(func() { close(started) })
				}
			}
		})
	}
	<-started
	// Subscribe while writes are in flight, several times.
	var feeds []*collector
	for range 4 {
		c, _ := startWatch(t, b, base)
		feeds = append(feeds, c)
	}
	wg.Wait()
	final := base + writers*each
	if got := CurrentRev(t, b); got != final {
		t.Fatalf("revision %d, want %d", got, final)
	}
	for i, c := range feeds {
		got := checkFeed(t, c.waitRev(t, final), base+1, final)
		if len(got) != writers*each {
			t.Errorf("feed %d: %d events", i, len(got))
		}
	}
}

func testCompact(t *testing.T, open Opener) {
	b := open(t)
	ctx := testCtx(t)
	base := CurrentRev(t, b)
	r1 := Write(t, b, Put("a", "1"))
	Write(t, b, Put("a", "2"))            // r1+1
	Write(t, b, Put("b", "1"))            // r1+2
	Write(t, b, Del("b"))                 // r1+3
	c := Write(t, b, Put("c", "1"))       // r1+4: compaction point
	Write(t, b, Put("a", "3"))            // after it
	Write(t, b, Put("d", "1"), Del("c"))  // r6+1
	cur := Write(t, b, Put("b", "again")) // b recreated
	stateAt := func(rev int64) []backend.KeyValue {
		t.Helper()
		return mustRange(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}, Revision: rev}).KVs
	}
	before := map[int64][]backend.KeyValue{}
	for rev := c; rev <= cur; rev++ {
		before[rev] = stateAt(rev)
	}
	evsBefore, err := b.Events(ctx, c+1, cur)
	if err != nil {
		t.Fatal(err)
	}

	if err := b.Compact(ctx, c); err != nil {
		t.Fatalf("compact: %v", err)
	}
	for rev := c; rev <= cur; rev++ {
		got := stateAt(rev)
		if len(got) != len(before[rev]) {
			t.Fatalf("state at %d after compaction: %q, want %q", rev, keysOf(got), keysOf(before[rev]))
		}
		for i := range got {
			checkKV(t, fmt.Sprintf("state at %d", rev), got[i], before[rev][i])
		}
	}
	if kv, _ := get(t, b, "a", c); kv.Version != 2 || kv.CreateRevision != r1 || string(kv.Value) != "2" {
		t.Errorf("a at compaction point: %s", kvString(&kv))
	}
	for _, rev := range []int64{base + 1, c - 1} {
		_, err := Range(t, b, backend.RangeOptions{Key: []byte("a"), Revision: rev})
		wantErr(t, fmt.Sprintf("range at %d below compaction %d", rev, c), err, backend.ErrCompacted)
		_, err = Range(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}, Revision: rev, CountOnly: true})
		wantErr(t, fmt.Sprintf("count at %d below compaction %d", rev, c), err, backend.ErrCompacted)
	}
	_, err = b.Events(ctx, c-1, cur)
	wantErr(t, "events below compaction", err, backend.ErrCompacted)
	_, err = b.Events(ctx, base+1, cur)
	wantErr(t, "events from the start", err, backend.ErrCompacted)
	evs, err := b.Events(ctx, c+1, cur)
	if err != nil {
		t.Fatalf("events after compaction point: %v", err)
	}
	checkEvents(t, "events after compaction point", evs, evsBefore)

	err = b.View(ctx, func(tx backend.ReadTx) error {
		if tx.CompactRevision() != c {
			t.Errorf("compact revision %d, want %d", tx.CompactRevision(), c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := b.Status(ctx); err != nil || st.CompactRevision != c || st.Revision != cur {
		t.Errorf("status %+v, %v", st, err)
	}
	wantErr(t, "compact below compaction", b.Compact(ctx, c-1), backend.ErrCompacted)
	wantErr(t, "compact beyond current", b.Compact(ctx, cur+10), backend.ErrFutureRevision)

	// Watches from before the compaction fail; from it on they work.
	err = b.Watch(ctx, base, func([]backend.Event) {})
	wantErr(t, "watch below compaction", err, backend.ErrCompacted)
	feed, _ := startWatch(t, b, c)
	checkFeed(t, feed.waitRev(t, cur), c+1, cur)

	// Writes keep computing versions from the compacted history.
	rev := Write(t, b, Put("a", "4"))
	kv, _ := get(t, b, "a", 0)
	checkKV(t, "a after compaction", kv, backend.KeyValue{Key: []byte("a"), Value: []byte("4"), CreateRevision: r1, ModRevision: rev, Version: 4})

	// Compact to the current revision: only live keys remain.
	if err := b.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	got := stateAt(rev)
	if keys := keysOf(got); !slices.Equal(keys, []string{"a", "b", "d"}) {
		t.Errorf("state after full compaction: %q", keys)
	}
	if evs, err := b.Events(ctx, rev+1, rev+1); err != nil || len(evs) != 0 {
		t.Errorf("events after full compaction: %v, %v", evs, err)
	}
	// A deleted-then-recreated key's history was dropped, its present kept.
	if kv, _ := get(t, b, "b", 0); kv.CreateRevision != cur || kv.Version != 1 {
		t.Errorf("b: %s", kvString(&kv))
	}
}

var leaseExpiry = time.Unix(1_900_000_000, 0).UTC()

func leaseEqual(a, b backend.Lease) bool {
	return a.ID == b.ID && a.TTL == b.TTL && a.Expiry.Equal(b.Expiry)
}

func testLeases(t *testing.T, open Opener) {
	b := open(t)
	ctx := testCtx(t)
	l1 := backend.Lease{ID: 1, TTL: 10, Expiry: leaseExpiry}
	l2 := backend.Lease{ID: 0x7fffffffffffffff, TTL: 3600, Expiry: leaseExpiry.Add(time.Hour)}
	err := b.Update(ctx, func(tx backend.WriteTx) error {
		if err := tx.PutLease(ctx, l1); err != nil {
			return err
		}
		return tx.PutLease(ctx, l2)
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(want ...backend.Lease) {
		t.Helper()
		err := b.View(ctx, func(tx backend.ReadTx) error {
			got, err := tx.Leases(ctx)
			if err != nil {
				return err
			}
			slices.SortFunc(got, func(a, b backend.Lease) int { return cmp.Compare(a.ID, b.ID) })
			if len(got) != len(want) {
				t.Errorf("leases %+v, want %+v", got, want)
				return nil
			}
			for i := range got {
				if !leaseEqual(got[i], want[i]) {
					t.Errorf("lease %d: %+v, want %+v", i, got[i], want[i])
				}
				l, err := tx.Lease(ctx, want[i].ID)
				if err != nil || !leaseEqual(l, want[i]) {
					t.Errorf("lease %d: %+v, %v", want[i].ID, l, err)
				}
			}
			_, err = tx.Lease(ctx, 424242)
			wantErr(t, "missing lease", err, backend.ErrLeaseNotFound)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(l1, l2)
	// Keep-alive replaces; a lease write does not change the revision.
	rev := CurrentRev(t, b)
	l1b := l1
	l1b.Expiry = leaseExpiry.Add(time.Minute)
	if err := b.Update(ctx, func(tx backend.WriteTx) error { return tx.PutLease(ctx, l1b) }); err != nil {
		t.Fatal(err)
	}
	check(l1b, l2)
	if got := CurrentRev(t, b); got != rev {
		t.Errorf("lease put moved the revision from %d to %d", rev, got)
	}
	if err := b.Update(ctx, func(tx backend.WriteTx) error { return tx.DeleteLease(ctx, l1.ID) }); err != nil {
		t.Fatal(err)
	}
	check(l2)
	// Put and delete in one transaction, and deletes seen by the same tx.
	err = b.Update(ctx, func(tx backend.WriteTx) error {
		if err := tx.PutLease(ctx, backend.Lease{ID: 3, TTL: 5}); err != nil {
			return err
		}
		if err := tx.DeleteLease(ctx, l2.ID); err != nil {
			return err
		}
		if _, err := tx.Lease(ctx, l2.ID); !errors.Is(err, backend.ErrLeaseNotFound) {
			return fmt.Errorf("deleted lease still visible in tx: %v", err)
		}
		ls, err := tx.Leases(ctx)
		if err != nil {
			return err
		}
		if len(ls) != 1 || ls[0].ID != 3 {
			return fmt.Errorf("tx leases %+v", ls)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(backend.Lease{ID: 3, TTL: 5})
}

func leaseKeys(t testing.TB, b backend.Backend, id int64) []string {
	t.Helper()
	var out []string
	err := b.View(testCtx(t), func(tx backend.ReadTx) error {
		keys, err := tx.LeaseKeys(testCtx(t), id)
		for _, k := range keys {
			out = append(out, string(k))
		}
		return err
	})
	if err != nil {
		t.Fatalf("lease keys: %v", err)
	}
	return out
}

func testLeaseKeys(t *testing.T, open Opener) {
	b := open(t)
	ctx := testCtx(t)
	err := b.Update(ctx, func(tx backend.WriteTx) error {
		for _, id := range []int64{1, 2} {
			if err := tx.PutLease(ctx, backend.Lease{ID: id, TTL: 60}); err != nil {
				return err
			}
		}
		_, err := ApplyOps(ctx, tx, PutWithLease("k2", "x", 1), PutWithLease("k1", "x", 1), PutWithLease("other", "x", 2), Put("plain", "x"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		ops   []Op
		want1 []string
		want2 []string
	}{
		{"initial", nil, []string{"k1", "k2"}, []string{"other"}},
		{"re-put without lease", []Op{Put("k1", "y")}, []string{"k2"}, []string{"other"}},
		{"delete", []Op{Del("k2")}, nil, []string{"other"}},
		{"attach new and existing", []Op{PutWithLease("k3", "x", 1), PutWithLease("plain", "y", 1)}, []string{"k3", "plain"}, []string{"other"}},
		{"move to other lease", []Op{PutWithLease("k3", "z", 2)}, []string{"plain"}, []string{"k3", "other"}},
		{"recreate deleted with lease", []Op{PutWithLease("k2", "again", 2)}, []string{"plain"}, []string{"k2", "k3", "other"}},
	}
	for _, s := range steps {
		if len(s.ops) > 0 {
			Write(t, b, s.ops...)
		}
		if got := leaseKeys(t, b, 1); !slices.Equal(got, s.want1) {
			t.Errorf("%s: lease 1 keys %q, want %q", s.name, got, s.want1)
		}
		if got := leaseKeys(t, b, 2); !slices.Equal(got, s.want2) {
			t.Errorf("%s: lease 2 keys %q, want %q", s.name, got, s.want2)
		}
	}
	// Inside a write transaction, LeaseKeys reflects the transaction's own
	// changes; a failing transaction changes nothing.
	err = b.Update(ctx, func(tx backend.WriteTx) error {
		if _, err := ApplyOps(ctx, tx, Del("plain"), PutWithLease("k4", "x", 1)); err != nil {
			return err
		}
		keys, err := tx.LeaseKeys(ctx, 1)
		if err != nil {
			return err
		}
		if len(keys) != 1 || string(keys[0]) != "k4" {
			return fmt.Errorf("tx lease keys %q", keys)
		}
		return errBoom
	})
	wantErr(t, "failing update", err, errBoom)
	if got := leaseKeys(t, b, 1); !slices.Equal(got, []string{"plain"}) {
		t.Errorf("after failed update: lease 1 keys %q", got)
	}
	// Revoke: delete the lease and its keys in one transaction.
	err = b.Update(ctx, func(tx backend.WriteTx) error {
		keys, err := tx.LeaseKeys(ctx, 2)
		if err != nil {
			return err
		}
		var ops []Op
		for _, k := range keys {
			ops = append(ops, Op{Key: k, Delete: true})
		}
		if _, err := ApplyOps(ctx, tx, ops...); err != nil {
			return err
		}
		return tx.DeleteLease(ctx, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := leaseKeys(t, b, 2); len(got) != 0 {
		t.Errorf("after revoke: lease 2 keys %q", got)
	}
	res := mustRange(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	if got := keysOf(res.KVs); !slices.Equal(got, []string{"k1", "plain"}) {
		t.Errorf("keys after revoke: %q", got)
	}
}

func testClose(t *testing.T, open Opener) {
	b := open(t)
	Write(t, b, Put("a", "1"))
	base := CurrentRev(t, b)
	// Updates racing with Close either commit or fail with ErrClosed.
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[string]bool{}
	for w := range 20 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d/%d", w, i)
				err := b.Update(t.Context(), func(tx backend.WriteTx) error {
					_, err := ApplyOps(t.Context(), tx, Put(key, "x"))
					return err
				})
				if err != nil {
					if !errors.Is(err, backend.ErrClosed) {
						t.Errorf("update racing close: %v", err)
					}
					return
				}
				mu.Lock()
				committed[key] = true
				mu.Unlock()
			}
		})
	}
	feed, _ := startWatch(t, b, base)
	feed.waitRev(t, base+1) // some writes happened
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	select {
	case <-feed.done:
		if feed.err == nil {
			t.Error("watch returned nil after close, want an error")
		}
	case <-testCtx(t).Done():
		t.Fatal("watch did not return after close")
	}
	ctx := testCtx(t)
	wantErr(t, "update after close", b.Update(ctx, func(backend.WriteTx) error { return nil }), backend.ErrClosed)
	wantErr(t, "view after close", b.View(ctx, func(backend.ReadTx) error { return nil }), backend.ErrClosed)
	_, err := b.Events(ctx, 1, 2)
	wantErr(t, "events after close", err, backend.ErrClosed)
	wantErr(t, "compact after close", b.Compact(ctx, base), backend.ErrClosed)
	_, err = b.Status(ctx)
	wantErr(t, "status after close", err, backend.ErrClosed)
	wantErr(t, "watch after close", b.Watch(ctx, 0, func([]backend.Event) {}), backend.ErrClosed)
	if len(committed) == 0 {
		t.Error("no update committed before close")
	}
}

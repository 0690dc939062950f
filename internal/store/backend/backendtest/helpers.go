package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// timeout bounds every blocking step of the suite so that a broken engine
// fails a test instead of hanging it.
const timeout = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Op is one write of a transaction: a put (with an optional lease) or a
// delete.
type Op struct {
	Key, Value []byte
	Lease      int64
	Delete     bool
}

// Put returns a put Op.
func Put(key, value string) Op { return Op{Key: []byte(key), Value: []byte(value)} }

// PutWithLease returns a put Op attached to lease.
func PutWithLease(key, value string, lease int64) Op {
	return Op{Key: []byte(key), Value: []byte(value), Lease: lease}
}

// Del returns a delete Op.
func Del(key string) Op { return Op{Key: []byte(key), Delete: true} }

// Events computes the events of ops applied at revision tx.Revision()+1, the
// way the store's evaluator does: CreateRevision, Version and PrevKV come
// from the key's current version in tx. Deleting a missing key yields no
// event. Keys must not repeat within ops.
func Events(ctx context.Context, tx backend.ReadTx, ops []Op) ([]backend.Event, error) {
	rev := tx.Revision() + 1
	var evs []backend.Event
	for _, op := range ops {
		res, err := tx.Range(ctx, backend.RangeOptions{Key: op.Key})
		if err != nil {
			return nil, fmt.Errorf("reading %q: %w", op.Key, err)
		}
		var prev *backend.KeyValue
		if len(res.KVs) == 1 {
			p := res.KVs[0]
			prev = &p
		}
		if op.Delete {
			if prev == nil {
				continue
			}
			evs = append(evs, backend.Event{
				Type:   backend.EventDelete,
				KV:     backend.KeyValue{Key: op.Key, ModRevision: rev},
				PrevKV: prev,
			})
			continue
		}
		kv := backend.KeyValue{Key: op.Key, Value: op.Value, ModRevision: rev, CreateRevision: rev, Version: 1, Lease: op.Lease}
		if prev != nil {
			kv.CreateRevision = prev.CreateRevision
			kv.Version = prev.Version + 1
		}
		evs = append(evs, backend.Event{Type: backend.EventPut, KV: kv, PrevKV: prev})
	}
	return evs, nil
}

// ApplyOps computes the events of ops and applies them as the next
// revision. It returns that revision, or 0 if ops changed nothing.
func ApplyOps(ctx context.Context, tx backend.WriteTx, ops ...Op) (int64, error) {
	evs, err := Events(ctx, tx, ops)
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, nil
	}
	rev := tx.Revision() + 1
	if err := tx.Apply(ctx, rev, evs); err != nil {
		return 0, fmt.Errorf("apply at %d: %w", rev, err)
	}
	return rev, nil
}

// Write runs ops as one Update and returns the new revision.
func Write(t testing.TB, b backend.Backend, ops ...Op) int64 {
	t.Helper()
	var rev int64
	err := b.Update(testCtx(t), func(tx backend.WriteTx) error {
		var err error
		rev, err = ApplyOps(testCtx(t), tx, ops...)
		return err
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	return rev
}

// CurrentRev returns the backend's committed revision.
func CurrentRev(t testing.TB, b backend.Backend) int64 {
	t.Helper()
	var rev int64
	if err := b.View(testCtx(t), func(tx backend.ReadTx) error {
		rev = tx.Revision()
		return nil
	}); err != nil {
		t.Fatalf("view: %v", err)
	}
	return rev
}

// Range runs one Range in a View.
func Range(t testing.TB, b backend.Backend, opts backend.RangeOptions) (backend.RangeResult, error) {
	t.Helper()
	var res backend.RangeResult
	err := b.View(testCtx(t), func(tx backend.ReadTx) error {
		var err error
		res, err = tx.Range(testCtx(t), opts)
		return err
	})
	return res, err
}

func mustRange(t testing.TB, b backend.Backend, opts backend.RangeOptions) backend.RangeResult {
	t.Helper()
	res, err := Range(t, b, opts)
	if err != nil {
		t.Fatalf("range %q..%q at %d: %v", opts.Key, opts.End, opts.Revision, err)
	}
	return res
}

// get reads one key at rev (0 = current).
func get(t testing.TB, b backend.Backend, key string, rev int64) (backend.KeyValue, bool) {
	t.Helper()
	res := mustRange(t, b, backend.RangeOptions{Key: []byte(key), Revision: rev})
	switch len(res.KVs) {
	case 0:
		if res.Count != 0 {
			t.Fatalf("get %q: no KVs but Count %d", key, res.Count)
		}
		return backend.KeyValue{}, false
	case 1:
		if res.Count != 1 {
			t.Fatalf("get %q: Count %d, want 1", key, res.Count)
		}
		return res.KVs[0], true
	}
	t.Fatalf("get %q: %d KVs", key, len(res.KVs))
	return backend.KeyValue{}, false
}

func kvString(kv *backend.KeyValue) string {
	if kv == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%q=%q c%d m%d v%d l%d}", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

func kvEqual(a, b *backend.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision &&
		a.Version == b.Version && a.Lease == b.Lease
}

func checkKV(t testing.TB, what string, got, want backend.KeyValue) {
	t.Helper()
	if !kvEqual(&got, &want) {
		t.Errorf("%s: got %s, want %s", what, kvString(&got), kvString(&want))
	}
}

func eventString(ev backend.Event) string {
	typ := "PUT"
	if ev.Type == backend.EventDelete {
		typ = "DELETE"
	}
	return fmt.Sprintf("%s %s prev=%s", typ, kvString(&ev.KV), kvString(ev.PrevKV))
}

func checkEvents(t testing.TB, what string, got, want []backend.Event) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Type == want[i].Type && kvEqual(&got[i].KV, &want[i].KV) && kvEqual(got[i].PrevKV, want[i].PrevKV)
	}
	if ok {
		return
	}
	t.Errorf("%s: events differ", what)
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = eventString(got[i])
		}
		if i < len(want) {
			w = eventString(want[i])
		}
		mark := " "
		if g != w {
			mark = "!"
		}
		t.Logf("%s %d\n    got  %s\n    want %s", mark, i, g, w)
	}
}

func keysOf(kvs []backend.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key)
	}
	return out
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// collector gathers what a Watch delivers.
type collector struct {
	mu      sync.Mutex
	batches [][]backend.Event
	last    int64
	notify  chan struct{}
	done    chan struct{}
	err     error
}

// startWatch subscribes after afterRev until the test ends (or stop is
// called through the returned cancel).
func startWatch(t testing.TB, b backend.Backend, afterRev int64) (*collector, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &collector{notify: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = b.Watch(ctx, afterRev, func(evs []backend.Event) {
			cp := append([]backend.Event(nil), evs...)
			c.mu.Lock()
			c.batches = append(c.batches, cp)
			if len(cp) > 0 {
				c.last = cp[len(cp)-1].KV.ModRevision
			}
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c, cancel
}

// waitRev waits until the watch delivered revision rev and returns every
// batch so far.
func (c *collector) waitRev(t testing.TB, rev int64) [][]backend.Event {
	t.Helper()
	ctx := testCtx(t)
	for {
		c.mu.Lock()
		last, batches := c.last, append([][]backend.Event(nil), c.batches...)
		c.mu.Unlock()
		if last >= rev {
			return batches
		}
		select {
		case <-c.notify:
		case <-c.done:
			t.Fatalf("watch ended before revision %d (last %d): %v", rev, last, c.err)
		case <-ctx.Done():
			t.Fatalf("watch: timed out waiting for revision %d (last %d)", rev, last)
		}
	}
}

// checkFeed checks that batches hold exactly the revisions from..to, in
// order, each once, with no revision split across batches. It returns the
// flattened events.
func checkFeed(t testing.TB, batches [][]backend.Event, from, to int64) []backend.Event {
	t.Helper()
	var all []backend.Event
	next := from
	for bi, batch := range batches {
		if len(batch) == 0 {
			t.Errorf("batch %d is empty", bi)
			continue
		}
		for i, ev := range batch {
			r := ev.KV.ModRevision
			switch {
			case len(all) > 0 && r == all[len(all)-1].KV.ModRevision:
				if i == 0 {
					t.Errorf("revision %d split across batches", r)
				}
			case r == next:
				next++
			default:
				t.Fatalf("batch %d event %d: revision %d, want %d (duplicate, gap or disorder)", bi, i, r, next)
			}
			all = append(all, ev)
		}
	}
	if next != to+1 {
		t.Fatalf("feed delivered revisions %d..%d, want %d..%d", from, next-1, from, to)
	}
	return all
}

package sqlcommon

import (
	"sync"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// localFeed keeps the events of the batches this instance committed most
// recently, so that Watch (the read cache follows the feed, so one runs
// in every SQL store) does not read back from kv_history what this
// instance has just written: one query per batch, with every value, on the
// database the writes are waiting for.
//
// A batch's revisions (base+1 … rev) were all written by this instance
// under the meta lock, so a watcher whose next revision is a recorded
// batch's first gets exactly what kv_history holds for those revisions.
// Revisions committed by other instances, and anything that fell out of
// the ring, are read from the database as before.
type localFeed struct {
	mu      sync.Mutex
	batches []*localBatch // oldest first
	bytes   int
}

type localBatch struct {
	from, to int64
	events   []backend.Event
	bytes    int
	// done is closed when the batch's COMMIT was answered; ok (set
	// before) says it committed.
	done chan struct{}
	ok   bool
}

// Bounds of the local feed.
const (
	localFeedMaxBatches = 256
	localFeedMaxBytes   = 32 << 20
)

// begin records the events of a batch about to be committed, advancing
// the revision from base to rev, in kv_history order. The LISTEN
// connection may announce the revision before the committer hears its
// COMMIT answered; a watcher that finds the batch waits for finish instead
// of reading it from the database. It returns nil if the batch is not
// recorded.
func (f *localFeed) begin(base, rev int64, events []backend.Event, bytes int) *localBatch {
	if rev <= base || bytes > localFeedMaxBytes/4 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.batches); n > 0 && f.batches[n-1].to >= rev {
		// A batch that was in doubt and did not commit, or revisions
		// went backwards: drop what is older rather than serve anything
		// doubtful.
		f.batches, f.bytes = nil, 0
	}
	lb := &localBatch{from: base + 1, to: rev, events: events, bytes: bytes, done: make(chan struct{})}
	f.batches = append(f.batches, lb)
	f.bytes += bytes
	for len(f.batches) > localFeedMaxBatches || f.bytes > localFeedMaxBytes {
		f.bytes -= f.batches[0].bytes
		f.batches[0] = nil
		f.batches = f.batches[1:]
	}
	return lb
}

// finish records whether lb committed; one that did not is dropped.
func (f *localFeed) finish(lb *localBatch, committed bool) {
	if lb == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lb.ok = committed
	close(lb.done)
	if committed {
		return
	}
	for i, b := range f.batches {
		if b == lb {
			f.bytes -= b.bytes
			f.batches = append(f.batches[:i], f.batches[i+1:]...)
			return
		}
	}
}

// next returns the recorded batch that starts at revision from, or nil.
func (f *localFeed) next(from int64) *localBatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Binary search: batches are in revision order.
	lo, hi := 0, len(f.batches)
	for lo < hi {
		m := (lo + hi) / 2
		if f.batches[m].from < from {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(f.batches) && f.batches[lo].from == from {
		return f.batches[lo]
	}
	return nil
}

// feedEvent is ev as kv_history returns it.
func feedEvent(ev backend.Event) (backend.Event, int) {
	out := backend.Event{Type: ev.Type}
	kv := ev.KV
	out.KV = backend.KeyValue{Key: append([]byte{}, kv.Key...), ModRevision: kv.ModRevision}
	if ev.Type == backend.EventPut {
		out.KV.Value = append([]byte{}, kv.Value...)
		out.KV.CreateRevision, out.KV.Version, out.KV.Lease = kv.CreateRevision, kv.Version, kv.Lease
	}
	n := len(kv.Key) + len(kv.Value) + 64
	if p := ev.PrevKV; p != nil && p.ModRevision != 0 {
		out.PrevKV = &backend.KeyValue{Key: out.KV.Key, Value: append([]byte{}, p.Value...), CreateRevision: p.CreateRevision,
			ModRevision: p.ModRevision, Version: p.Version, Lease: p.Lease}
		n += len(p.Value) + 64
	}
	return out, n
}

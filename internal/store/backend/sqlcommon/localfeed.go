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
	batches []localBatch // oldest first
	bytes   int
}

type localBatch struct {
	from, to int64
	events   []backend.Event
	bytes    int
}

// Bounds of the local feed.
const (
	localFeedMaxBatches = 256
	localFeedMaxBytes   = 32 << 20
)

// add records the events of a committed batch that advanced the revision
// from base to rev. The events are the rows written to kv_history, in
// kv_history order.
func (f *localFeed) add(base, rev int64, events []backend.Event, bytes int) {
	if rev <= base || bytes > localFeedMaxBytes/4 {
		f.reset()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.batches); n > 0 && f.batches[n-1].to >= rev {
		// Revisions went backwards (cannot happen while revisions only
		// grow); drop everything rather than serve anything doubtful.
		f.batches, f.bytes = nil, 0
	}
	f.batches = append(f.batches, localBatch{from: base + 1, to: rev, events: events, bytes: bytes})
	f.bytes += bytes
	for len(f.batches) > localFeedMaxBatches || f.bytes > localFeedMaxBytes {
		f.bytes -= f.batches[0].bytes
		f.batches[0] = localBatch{}
		f.batches = f.batches[1:]
	}
}

func (f *localFeed) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches, f.bytes = nil, 0
}

// next returns the events of the recorded batch that starts at from, the
// last revision it covers, and whether there is one. The events are
// shared: callers must not modify them.
func (f *localFeed) next(from int64) ([]backend.Event, int64, bool) {
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
		b := f.batches[lo]
		return b.events, b.to, true
	}
	return nil, 0, false
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

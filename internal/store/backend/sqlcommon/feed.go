package sqlcommon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// headNotifier holds the newest revision known to be committed and wakes
// waiters when it grows.
type headNotifier struct {
	mu     sync.Mutex
	rev    int64
	ch     chan struct{} // closed and replaced when rev grows
	closed bool
}

func (h *headNotifier) init() { h.ch = make(chan struct{}) }

func (h *headNotifier) observe(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.rev || h.closed {
		return
	}
	h.rev = rev
	close(h.ch)
	h.ch = make(chan struct{})
}

func (h *headNotifier) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.ch)
	}
}

// get returns the known head, a channel closed when it changes, and
// whether the notifier was closed.
func (h *headNotifier) get() (int64, <-chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev, h.ch, h.closed
}

// Events returns committed events with fromRev <= revision <= toRev.
func (e *Engine) Events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, error) {
	evs, _, err := e.events(ctx, fromRev, toRev)
	return evs, e.unavailable(err)
}

// events reads events in [fromRev, toRev] within one snapshot and returns
// them with the snapshot's revision (events above it are not returned).
func (e *Engine) events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, int64, error) {
	if e.closed.Load() {
		return nil, 0, backend.ErrClosed
	}
	var evs []backend.Event
	var snap int64
	err := e.View(ctx, func(rtx backend.ReadTx) error {
		tx := rtx.(*readTx)
		snap = tx.rev
		if fromRev < 1 {
			fromRev = 1
		}
		if fromRev < tx.compact {
			return fmt.Errorf("events from revision %d (compacted to %d): %w", fromRev, tx.compact, backend.ErrCompacted)
		}
		if toRev > tx.rev {
			toRev = tx.rev
		}
		if fromRev > toRev {
			return nil
		}
		rows, err := tx.run("SELECT h.rev, h.k, h.del, h.create_rev, h.version, h.lease, h.value,"+
			" h.prev_rev, p.create_rev, p.version, p.lease, p.value"+
			" FROM kv_history h LEFT JOIN kv_history p ON p.k = h.k AND p.rev = h.prev_rev"+
			" WHERE h.rev >= ? AND h.rev <= ? ORDER BY h.rev, h.sub", fromRev, toRev)
		if err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var ev backend.Event
			var del int64
			var prevRev int64
			var pCreate, pVersion, pLease *int64
			var pValue []byte
			kv := &ev.KV
			if err := rows.Scan(&kv.ModRevision, &kv.Key, &del, &kv.CreateRevision, &kv.Version, &kv.Lease, &kv.Value,
				&prevRev, &pCreate, &pVersion, &pLease, &pValue); err != nil {
				return fmt.Errorf("reading events: %w", err)
			}
			kv.Key = nonNil(kv.Key)
			if del != 0 {
				ev.Type = backend.EventDelete
				kv.Value = nil
			} else {
				kv.Value = nonNil(kv.Value)
			}
			if prevRev != 0 {
				if pCreate == nil {
					return fmt.Errorf("event at revision %d: previous version %d of %q missing: %w", kv.ModRevision, prevRev, kv.Key, backend.ErrCorrupt)
				}
				ev.PrevKV = &backend.KeyValue{Key: kv.Key, Value: nonNil(pValue), CreateRevision: *pCreate,
					ModRevision: prevRev, Version: *pVersion, Lease: *pLease}
			}
			evs = append(evs, ev)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		return rows.Close()
	})
	return evs, snap, err
}

// Watch delivers every committed event above afterRev, in order, in
// batches of whole revisions, until ctx ends.
func (e *Engine) Watch(ctx context.Context, afterRev int64, fn func([]backend.Event)) error {
	if e.closed.Load() {
		return backend.ErrClosed
	}
	e.addWatcher(1)
	defer e.addWatcher(-1)
	last := afterRev
	backoff := 10 * time.Millisecond
	// The first read goes to the database, which checks afterRev against
	// the compaction revision; later ones may come from the local feed.
	checked := false
	for {
		head, changed, closed := e.head.get()
		if closed {
			return backend.ErrClosed
		}
		if head > last && checked {
			if lb := e.local.next(last + 1); lb != nil {
				select {
				case <-lb.done:
				case <-ctx.Done():
					return nil
				case <-e.gone:
					return backend.ErrClosed
				}
				if lb.ok {
					fn(append([]backend.Event(nil), lb.events...))
					last = lb.to
					continue
				}
			}
		}
		if head > last {
			to := min(head, last+e.opts.FeedChunk)
			evs, snap, err := e.events(ctx, last+1, to)
			if err != nil {
				switch {
				case ctx.Err() != nil:
					return nil
				case e.closed.Load():
					return backend.ErrClosed
				case errors.Is(err, backend.ErrCompacted), errors.Is(err, backend.ErrCorrupt):
					return fmt.Errorf("watch after revision %d: %w", last, err)
				}
				// A database error (connection lost, restart): retry from
				// the same revision, so nothing is lost or repeated.
				e.log.Warn("change feed read failed; retrying", "after", last, "err", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 10 * time.Millisecond
			checked = true
			if len(evs) > 0 {
				fn(evs)
			}
			// Every revision up to min(to, snap) has been read.
			last = max(last, min(to, snap))
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

package sqlcommon

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// eventsSQL reads the meta row and the events of a revision range in one
// statement, so in one snapshot (a single statement sees one snapshot in
// PostgreSQL's READ COMMITTED and in InnoDB's consistent reads) and one
// round trip, outside any transaction. The meta row comes back on every
// row, and alone (the event columns NULL) when the range holds no event.
// kv_history rows above meta.rev cannot exist in any snapshot (a batch
// writes both in one transaction); the bound only keeps the scan short.
//
// There is no ORDER BY: MariaDB sorts such an outer join through a
// temporary table, which for the value BLOBs is an on-disk one (its CPU
// per put rose by a third). Both databases return the rows in the order
// of kv_history's primary key range scan; readEvents checks and sorts if
// they do not.
const eventsSQL = "SELECT m.rev, m.compact_rev, h.rev, h.sub, h.k, h.del, h.create_rev, h.version, h.lease, h.value," +
	" h.prev_rev, p.create_rev, p.version, p.lease, p.value" +
	" FROM meta m LEFT JOIN kv_history h ON h.rev >= ? AND h.rev <= ? AND h.rev <= m.rev" +
	" LEFT JOIN kv_history p ON p.k = h.k AND p.rev = h.prev_rev" +
	" WHERE m.id = 1"

// events reads events in [fromRev, toRev] within one snapshot and returns
// them with the snapshot's revision (events above it are not returned).
func (e *Engine) events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, int64, error) {
	if e.closed.Load() {
		return nil, 0, backend.ErrClosed
	}
	if fromRev < 1 {
		fromRev = 1
	}
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("acquiring connection: %w", err)
	}
	evs, snap, err := readEvents(ctx, conn, fromRev, toRev)
	conn.Release(err != nil && !errors.Is(err, backend.ErrCompacted) && !errors.Is(err, backend.ErrCorrupt))
	return evs, snap, err
}

func readEvents(ctx context.Context, conn Conn, fromRev, toRev int64) ([]backend.Event, int64, error) {
	rows, err := conn.Query(ctx, eventsSQL, fromRev, toRev)
	if err != nil {
		return nil, 0, fmt.Errorf("reading events: %w", err)
	}
	defer rows.Close()
	var evs []backend.Event
	var subs []int64
	var snap, compact int64
	meta := false
	for rows.Next() {
		var ev backend.Event
		var mod, sub, del, create, version, lease, prevRev *int64
		var pCreate, pVersion, pLease *int64
		var pValue []byte
		kv := &ev.KV
		if err := rows.Scan(&snap, &compact, &mod, &sub, &kv.Key, &del, &create, &version, &lease, &kv.Value,
			&prevRev, &pCreate, &pVersion, &pLease, &pValue); err != nil {
			return nil, 0, fmt.Errorf("reading events: %w", err)
		}
		meta = true
		if mod == nil {
			continue // no event in the range: only the meta row
		}
		kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease = *mod, *create, *version, *lease
		subs = append(subs, *sub)
		kv.Key = nonNil(kv.Key)
		if *del != 0 {
			ev.Type = backend.EventDelete
			kv.Value = nil
		} else {
			kv.Value = nonNil(kv.Value)
		}
		if *prevRev != 0 {
			if pCreate == nil {
				// Checked below: a compaction may have removed it.
				evs = append(evs, ev)
				evs[len(evs)-1].PrevKV = &backend.KeyValue{ModRevision: -*prevRev}
				continue
			}
			ev.PrevKV = &backend.KeyValue{Key: kv.Key, Value: nonNil(pValue), CreateRevision: *pCreate,
				ModRevision: *prevRev, Version: *pVersion, Lease: *pLease}
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading events: %w", err)
	}
	if err := rows.Close(); err != nil {
		return nil, 0, fmt.Errorf("reading events: %w", err)
	}
	if !meta {
		return nil, 0, fmt.Errorf("meta row missing: %w", backend.ErrCorrupt)
	}
	sortEvents(evs, subs)
	if fromRev < compact {
		return nil, snap, fmt.Errorf("events from revision %d (compacted to %d): %w", fromRev, compact, backend.ErrCompacted)
	}
	for _, ev := range evs {
		if p := ev.PrevKV; p != nil && p.ModRevision < 0 {
			return nil, snap, fmt.Errorf("event at revision %d: previous version %d of %q missing: %w", ev.KV.ModRevision, -p.ModRevision, ev.KV.Key, backend.ErrCorrupt)
		}
	}
	return evs, snap, nil
}

// sortEvents puts evs in (revision, sub-index) order, subs holding each
// event's sub-index; they are normally in that order already.
func sortEvents(evs []backend.Event, subs []int64) {
	less := func(i, j int) bool {
		a, b := evs[i].KV.ModRevision, evs[j].KV.ModRevision
		return a < b || a == b && subs[i] < subs[j]
	}
	sorted := true
	for i := 1; i < len(evs) && sorted; i++ {
		sorted = less(i-1, i)
	}
	if sorted {
		return
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return less(idx[a], idx[b]) })
	out := make([]backend.Event, len(evs))
	for i, j := range idx {
		out[i] = evs[j]
	}
	copy(evs, out)
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

package sqlcommon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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

// sharedRead is one change feed read of the revisions from..upto that
// concurrent Watch calls share.
type sharedRead struct {
	from int64
	done chan struct{} // closed when the fields below are set
	evs  []backend.Event
	upto int64 // every revision from..upto was read (upto < from: none)
	err  error
}

// sharedReads keeps the reads in flight and the most recent ones.
type sharedReads struct {
	mu     sync.Mutex
	recent []*sharedRead // in the order they started
}

// sharedReadsKept bounds the reads kept for Watch calls that come later.
const sharedReadsKept = 4

// join returns the read starting at revision from, in flight or recent;
// if there is none (or it failed) it starts one that the caller must
// finish (own is true).
func (s *sharedReads) join(from int64) (r *sharedRead, own bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.recent) - 1; i >= 0; i-- {
		r := s.recent[i]
		if r.from != from {
			continue
		}
		select {
		case <-r.done:
			if r.err != nil || r.upto < from {
				continue
			}
		default:
		}
		return r, false
	}
	r = &sharedRead{from: from, done: make(chan struct{})}
	s.recent = append(s.recent, r)
	if len(s.recent) > sharedReadsKept {
		s.recent[0] = nil
		s.recent = s.recent[1:]
	}
	return r, true
}

// finish records the outcome of a read started by join.
func (s *sharedReads) finish(r *sharedRead, evs []backend.Event, upto int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.evs, r.upto, r.err = evs, upto, err
	close(r.done)
}

// eventsSQL reads the meta row and the events of a revision range in one
// statement, so in one snapshot and one round trip: a LEFT JOIN from the
// meta row returns it (with NULL events) also when the range is empty.
// Only revisions up to the snapshot's revision are returned. The rows are
// put in (rev, sub) order by readEvents: with an ORDER BY, MariaDB sorts
// the outer join's rows, values included, through a temporary table
// (three times the cost of the query without it, for 50 revisions).
const eventsSQL = "SELECT m.rev, m.compact_rev, h.rev, h.sub, h.k, h.del, h.create_rev, h.version, h.lease, h.value," +
	" h.prev_rev, p.create_rev, p.version, p.lease, p.value" +
	" FROM meta m" +
	" LEFT JOIN kv_history h ON h.rev >= ? AND h.rev <= ? AND h.rev <= m.rev" +
	" LEFT JOIN kv_history p ON p.k = h.k AND p.rev = h.prev_rev" +
	" WHERE m.id = 1"

// events reads events in [fromRev, toRev] within one snapshot and returns
// them with the snapshot's revision (events above it are not returned).
//
// It is one statement outside any explicit transaction: the change feed
// waits for it, and a read-only transaction (BEGIN and the meta read, the
// events, ROLLBACK) cost three round trips where this costs one.
func (e *Engine) events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, int64, error) {
	if e.closed.Load() {
		return nil, 0, backend.ErrClosed
	}
	fromRev = max(fromRev, 1)
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("acquiring connection: %w", err)
	}
	evs, snap, dbErr, err := readEvents(ctx, conn, fromRev, toRev)
	conn.Release(dbErr)
	return evs, snap, err
}

// sortEvents puts evs in (revision, sub-index) order, the order of
// kv_history's primary key; subs holds each event's sub-index. The rows
// usually come in that order already.
func sortEvents(evs []backend.Event, subs []int64) {
	sorted := true
	for i := 1; i < len(evs) && sorted; i++ {
		a, b := evs[i-1].KV.ModRevision, evs[i].KV.ModRevision
		sorted = a < b || (a == b && subs[i-1] < subs[i])
	}
	if sorted {
		return
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		if c := cmp.Compare(evs[i].KV.ModRevision, evs[j].KV.ModRevision); c != 0 {
			return c
		}
		return cmp.Compare(subs[i], subs[j])
	})
	out := make([]backend.Event, len(evs))
	for i, k := range idx {
		out[i] = evs[k]
	}
	copy(evs, out)
}

// readEvents runs eventsSQL on conn. dbErr says the connection may be
// unusable (the error came from the database or the driver).
func readEvents(ctx context.Context, conn Conn, fromRev, toRev int64) (evs []backend.Event, snap int64, dbErr bool, err error) {
	rows, err := conn.Query(ctx, eventsSQL, fromRev, toRev)
	if err != nil {
		return nil, 0, true, fmt.Errorf("reading events: %w", err)
	}
	defer rows.Close()
	first := true
	var subs []int64
	for rows.Next() {
		var compact int64
		var hRev, sub, del, create, version, lease, prevRev *int64
		var key, value []byte
		var pCreate, pVersion, pLease *int64
		var pValue []byte
		if err := rows.Scan(&snap, &compact, &hRev, &sub, &key, &del, &create, &version, &lease, &value,
			&prevRev, &pCreate, &pVersion, &pLease, &pValue); err != nil {
			return nil, 0, true, fmt.Errorf("reading events: %w", err)
		}
		if first {
			first = false
			if fromRev < compact {
				return nil, 0, false, fmt.Errorf("events from revision %d (compacted to %d): %w", fromRev, compact, backend.ErrCompacted)
			}
		}
		if hRev == nil {
			continue // the range holds no committed revision
		}
		var ev backend.Event
		ev.KV = backend.KeyValue{Key: nonNil(key), ModRevision: *hRev, CreateRevision: *create, Version: *version, Lease: *lease}
		if *del != 0 {
			ev.Type = backend.EventDelete
		} else {
			ev.KV.Value = nonNil(value)
		}
		if *prevRev != 0 {
			if pCreate == nil {
				return nil, 0, false, fmt.Errorf("event at revision %d: previous version %d of %q missing: %w", *hRev, *prevRev, key, backend.ErrCorrupt)
			}
			ev.PrevKV = &backend.KeyValue{Key: ev.KV.Key, Value: nonNil(pValue), CreateRevision: *pCreate,
				ModRevision: *prevRev, Version: *pVersion, Lease: *pLease}
		}
		evs = append(evs, ev)
		subs = append(subs, *sub)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, true, fmt.Errorf("reading events: %w", err)
	}
	sortEvents(evs, subs)
	if err := rows.Close(); err != nil {
		return nil, 0, true, fmt.Errorf("reading events: %w", err)
	}
	if first {
		return nil, 0, false, fmt.Errorf("meta row missing: %w", backend.ErrCorrupt)
	}
	return evs, snap, false, nil
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
			// Another Watch (the read cache's and the watch hub's run in
			// every SQL store) may be reading, or have just read, the same
			// revisions: share its read instead of querying again.
			var shared *sharedRead
			if checked {
				r, own := e.reads.join(last + 1)
				if !own {
					select {
					case <-r.done:
					case <-ctx.Done():
						return nil
					}
					if r.err == nil && r.upto > last {
						if len(r.evs) > 0 {
							fn(append([]backend.Event(nil), r.evs...))
						}
						last = r.upto
						continue
					}
					// It failed or found nothing: read on our own, so
					// that errors are handled as for any read.
				} else {
					shared = r
				}
			}
			to := min(head, last+e.opts.FeedChunk)
			evs, snap, err := e.events(ctx, last+1, to)
			if shared != nil {
				e.reads.finish(shared, evs, max(last, min(to, snap)), err)
			}
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
				fn(append([]backend.Event(nil), evs...))
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

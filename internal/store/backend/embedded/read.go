package embedded

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// View implements backend.Backend. The view reads at the committed
// revision as of the call; later commits stay invisible to it.
func (e *Engine) View(ctx context.Context, fn func(backend.ReadTx) error) error {
	if e.isClosed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// A View reads at the revision committed when it began. If a
	// compaction overtakes that revision while fn runs (a starved reader),
	// its reads fail with ErrCompacted although the caller asked for
	// current state: run fn again on a fresh snapshot, a few times.
	for attempt := 0; ; attempt++ {
		tx := &readTx{e: e, rev: e.committed.Load()}
		err := fn(tx)
		if err == nil || attempt == 2 || !errors.Is(err, backend.ErrCompacted) || tx.rev >= tx.CompactRevision() {
			return err
		}
	}
}

type readTx struct {
	e   *Engine
	rev int64
}

func (t *readTx) Revision() int64 { return t.rev }

func (t *readTx) CompactRevision() int64 {
	t.e.mu.RLock()
	defer t.e.mu.RUnlock()
	return t.e.compactRev
}

func (t *readTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	return t.e.rangeAt(ctx, opts, t.rev, false)
}

func (t *readTx) Lease(ctx context.Context, id int64) (backend.Lease, error) {
	t.e.mu.RLock()
	l, ok := t.e.leases[id]
	t.e.mu.RUnlock()
	if !ok {
		return backend.Lease{}, fmt.Errorf("lease %d: %w", id, backend.ErrLeaseNotFound)
	}
	return l, nil
}

func (t *readTx) Leases(ctx context.Context) ([]backend.Lease, error) {
	t.e.mu.RLock()
	out := make([]backend.Lease, 0, len(t.e.leases))
	for _, l := range t.e.leases {
		out = append(out, l)
	}
	t.e.mu.RUnlock()
	slices.SortFunc(out, func(a, b backend.Lease) int { return cmpInt(a.ID, b.ID) })
	return out, nil
}

func (t *readTx) LeaseKeys(ctx context.Context, id int64) ([][]byte, error) {
	t.e.mu.RLock()
	keys := make([]string, 0, len(t.e.leaseKeys[id]))
	for k := range t.e.leaseKeys[id] {
		keys = append(keys, k)
	}
	t.e.mu.RUnlock()
	slices.Sort(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out, nil
}

type hit struct {
	key string
	r   revision
}

var allKeys = []byte{0}

// rangeAt serves Range for read views and for write transactions
// (committer=true: runs on the committer, which may read values still in
// the unwritten buffer of the batch it builds).
func (e *Engine) rangeAt(ctx context.Context, opts backend.RangeOptions, txRev int64, committer bool) (backend.RangeResult, error) {
	if err := ctx.Err(); err != nil {
		return backend.RangeResult{}, err
	}
	rev := opts.Revision
	if rev <= 0 {
		rev = txRev
	}
	if rev > txRev {
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (current %d): %w", rev, txRev, backend.ErrFutureRevision)
	}
	e.mu.RLock()
	if rev < e.compactRev {
		compact := e.compactRev
		e.mu.RUnlock()
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (compacted at %d): %w", rev, compact, backend.ErrCompacted)
	}
	res := backend.RangeResult{Revision: rev}
	var hits []hit
	// A range whose count need not come from collecting every key (a
	// count, or a page) is counted with the tree's counts when rev is
	// recent enough; then only the page is walked.
	counted := len(opts.End) > 0 && (opts.CountOnly || opts.Limit > 0) && rev >= e.recentFloor
	visit := func(ki *keyIndex) bool {
		r, ok := ki.live(rev)
		if !ok {
			return true
		}
		if !counted {
			res.Count++
		}
		if !opts.CountOnly && (opts.Limit <= 0 || int64(len(hits)) < opts.Limit) {
			hits = append(hits, hit{key: ki.key, r: r})
		}
		return !counted || !opts.CountOnly && int64(len(hits)) < opts.Limit
	}
	from := string(opts.Key)
	switch {
	case len(opts.End) == 0:
		if ki, ok := e.tree.Get(from); ok {
			visit(ki)
		}
	case bytes.Equal(opts.End, allKeys):
		if counted {
			res.Count = e.countAt(from, "", rev)
			if opts.CountOnly {
				break
			}
		}
		e.tree.AscendGreaterOrEqual(from, visit)
	case bytes.Compare(opts.End, opts.Key) > 0:
		to := string(opts.End)
		if counted {
			res.Count = e.countAt(from, to, rev)
			if opts.CountOnly {
				break
			}
		}
		e.tree.AscendRange(from, to, visit)
	}
	var files segSet
	if !opts.KeysOnly && len(hits) > 0 {
		files = e.filesFor(hits)
		defer files.release()
	}
	e.mu.RUnlock()
	res.More = opts.Limit > 0 && !opts.CountOnly && res.Count > int64(len(hits))
	if len(hits) == 0 {
		return res, nil
	}
	res.KVs = make([]backend.KeyValue, len(hits))
	var slab []byte
	nk := 0
	for i := range hits {
		nk += len(hits[i].key)
	}
	keys := make([]byte, 0, nk) // one allocation for every key of the page
	if !opts.KeysOnly {
		n := 0
		for i := range hits {
			n += int(hits[i].r.vlen)
		}
		slab = make([]byte, n)
	}
	for i := range hits {
		h := &hits[i]
		kv := &res.KVs[i]
		keys = append(keys, h.key...)
		kv.Key = keys[len(keys)-len(h.key) : len(keys) : len(keys)]
		kv.CreateRevision, kv.ModRevision = h.r.create, h.r.mod
		kv.Version, kv.Lease = h.r.version, h.r.lease
		if opts.KeysOnly {
			continue
		}
		kv.Value = slab[:h.r.vlen:h.r.vlen]
		slab = slab[h.r.vlen:]
	}
	if opts.KeysOnly {
		return res, nil
	}
	if err := e.readValues(files, hits, res.KVs, committer); err != nil {
		return backend.RangeResult{}, err
	}
	return res, nil
}

// Coalescing of value reads: values that sit close together in one
// segment (common: objects created or updated together) are fetched with
// one pread of the span that holds them, instead of one syscall each.
const (
	coalesceGap  = 16 << 10 // largest hole read over between two values
	coalesceSpan = 1 << 20  // largest span one pread covers
)

// readValues fills kvs[i].Value (already sized) with hits[i]'s value.
func (e *Engine) readValues(files segSet, hits []hit, kvs []backend.KeyValue, committer bool) error {
	if len(hits) == 1 {
		return e.readValue(files, hits[0].r, kvs[0].Value, committer)
	}
	// Order the values by position in the log.
	order := make([]int32, 0, len(hits))
	for i := range hits {
		r := hits[i].r
		if r.vlen == 0 {
			continue
		}
		if committer && r.seg == e.cur.id && r.off >= e.cur.size {
			copy(kvs[i].Value, e.cb.buf[r.off-e.cur.size:])
			continue
		}
		order = append(order, int32(i))
	}
	slices.SortFunc(order, func(a, b int32) int {
		ra, rb := hits[a].r, hits[b].r
		if ra.seg != rb.seg {
			return cmp.Compare(ra.seg, rb.seg)
		}
		return cmp.Compare(ra.off, rb.off)
	})
	var scratch []byte
	for i := 0; i < len(order); {
		first := hits[order[i]].r
		end := first.off + int64(first.vlen)
		j := i + 1
		for ; j < len(order); j++ {
			r := hits[order[j]].r
			if r.seg != first.seg || r.off-end > coalesceGap || r.off+int64(r.vlen)-first.off > coalesceSpan {
				break
			}
			end = max(end, r.off+int64(r.vlen))
		}
		if j == i+1 {
			if err := e.readValue(files, first, kvs[order[i]].Value, false); err != nil {
				return err
			}
			i = j
			continue
		}
		f, err := files.file(first.seg)
		if err != nil {
			return err
		}
		n := int(end - first.off)
		if cap(scratch) < n {
			scratch = make([]byte, n)
		}
		buf := scratch[:n]
		if err := readAt(f, buf, first.off); err != nil {
			return err
		}
		for _, k := range order[i:j] {
			r := hits[k].r
			copy(kvs[k].Value, buf[r.off-first.off:])
		}
		i = j
	}
	return nil
}

// filesFor acquires the segments hits' values live in; the caller
// releases them. e.mu must be held.
func (e *Engine) filesFor(hits []hit) segSet {
	files := make(segSet, 1)
	for i := range hits {
		if hits[i].r.vlen > 0 {
			files.add(e, hits[i].r.seg)
		}
	}
	return files
}

// readValue reads r's value into v.
func (e *Engine) readValue(files segSet, r revision, v []byte, committer bool) error {
	if len(v) == 0 {
		return nil
	}
	if committer && r.seg == e.cur.id && r.off >= e.cur.size {
		copy(v, e.cb.buf[r.off-e.cur.size:])
		return nil
	}
	f, err := files.file(r.seg)
	if err != nil {
		return err
	}
	return readAt(f, v, r.off)
}

func readAt(f *os.File, p []byte, off int64) error {
	if _, err := f.ReadAt(p, off); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return backend.ErrClosed
		}
		return fmt.Errorf("reading log: %w", err)
	}
	return nil
}

// Events implements backend.Backend. Events with fromRev at or below the
// compaction point are ErrCompacted: their PrevKVs may be gone.
func (e *Engine) Events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, error) {
	if e.isClosed.Load() {
		return nil, backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fromRev = max(fromRev, 1)
	e.mu.RLock()
	toRev = min(toRev, e.committed.Load())
	if e.compactRev > 0 && fromRev <= e.compactRev {
		c := e.compactRev
		e.mu.RUnlock()
		return nil, fmt.Errorf("events from revision %d (compacted at %d): %w", fromRev, c, backend.ErrCompacted)
	}
	fromRev = max(fromRev, e.revBase)
	if fromRev > toRev {
		e.mu.RUnlock()
		return nil, nil
	}
	locs := slices.Clone(e.revLocs[fromRev-e.revBase : toRev-e.revBase+1])
	files := make(segSet, 1)
	defer func() { files.release() }()
	for _, l := range locs {
		files.add(e, l.seg)
	}
	e.mu.RUnlock()

	// Read the records, coalescing neighbours in the same segment.
	var events []backend.Event
	for i := 0; i < len(locs); {
		j := i + 1
		for j < len(locs) && locs[j].seg == locs[i].seg && locs[j].off >= locs[j-1].off &&
			locs[j].off-(locs[j-1].off+int64(locs[j-1].n)) <= 64 && locs[j].off+int64(locs[j].n)-locs[i].off <= 4<<20 {
			j++
		}
		f, err := files.file(locs[i].seg)
		if err != nil {
			return nil, fmt.Errorf("revision record %d: %w", fromRev+int64(i), err)
		}
		start := locs[i].off
		span := make([]byte, locs[j-1].off+int64(locs[j-1].n)-start)
		if err := readAt(f, span, start); err != nil {
			return nil, err
		}
		for k := i; k < j; k++ {
			p := span[locs[k].off-start : locs[k].off-start+int64(locs[k].n)]
			want := fromRev + int64(k)
			rev, err := decodeRevision(p, func(ev recEvent) error {
				out := backend.Event{KV: backend.KeyValue{Key: ev.Key, ModRevision: want}}
				if ev.Delete {
					out.Type = backend.EventDelete
				} else {
					out.Type = backend.EventPut
					out.KV.Value = ev.Value
					out.KV.CreateRevision, out.KV.Version, out.KV.Lease = ev.Create, ev.Version, ev.Lease
				}
				events = append(events, out)
				return nil
			})
			if err != nil || rev != want {
				return nil, fmt.Errorf("%w: revision record %d: rev %d, %v", backend.ErrCorrupt, want, rev, err)
			}
		}
		i = j
	}

	// PrevKV: the key's newest revision before the event's, from the index.
	prevs := make([]hit, len(events))
	has := make([]bool, len(events))
	e.mu.RLock()
	if e.compactRev > 0 && fromRev <= e.compactRev {
		c := e.compactRev
		e.mu.RUnlock()
		return nil, fmt.Errorf("events from revision %d (compacted at %d): %w", fromRev, c, backend.ErrCompacted)
	}
	for i := range events {
		ki, ok := e.tree.Get(string(events[i].KV.Key))
		if !ok {
			continue
		}
		// Several events of one revision on the same key: the previous one
		// is the earlier event of that revision.
		rev := events[i].KV.ModRevision
		if p := ki.before(rev); p >= 0 && !ki.revs[p].tomb {
			prevs[i] = hit{key: ki.key, r: ki.revs[p]}
			has[i] = true
		}
	}
	files.release()
	files = e.filesFor(prevs)
	e.mu.RUnlock()
	for i := range events {
		if !has[i] {
			continue
		}
		r := prevs[i].r
		v := make([]byte, r.vlen)
		if err := e.readValue(files, r, v, false); err != nil {
			return nil, err
		}
		events[i].PrevKV = &backend.KeyValue{
			Key: events[i].KV.Key, Value: v, CreateRevision: r.create,
			ModRevision: r.mod, Version: r.version, Lease: r.lease,
		}
	}
	return events, nil
}

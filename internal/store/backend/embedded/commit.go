package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// request is one queued Update or Compact.
type request struct {
	ctx       context.Context
	fn        func(backend.WriteTx) error
	compact   int64      // > 0: a compaction to this revision instead of fn
	copies    []moveItem // reclamation: versions to copy forward instead of fn
	seal      uint32     // reclamation: > 0: write a mark with this floor instead of fn
	err       error
	panicVal  any
	panicked  bool
	committed bool
	done      chan struct{}
}

// maxInflight bounds how many group commits may wait for publication while
// the committer builds and writes the next one (so up to maxInflight+1
// fdatasyncs overlap). Concurrent fdatasyncs on one file share journal
// commits: on this project's 2-core test box, 100 callers with 4 KiB values
// went from ~22-31k puts/s with no overlap to ~42-50k with depth 2; with
// fast syncs and small values all depths were equal and depth 4 made
// batches smaller for no gain.
const maxInflight = 2

// undo kinds.
const (
	undoRev   = iota // a revision was appended to ki
	undoLease        // a lease change replaced prev (pending) and prevBatch
)

type undoOp struct {
	kind      uint8
	ki        *keyIndex
	leaseID   int64
	hadPrev   bool
	prev      pendingLease
	hadBatch  bool
	prevBatch *backend.Lease
}

// pendingLease is a lease change not yet published; l == nil is a delete.
type pendingLease struct {
	l   *backend.Lease
	seq uint64 // the batch that made it
}

// batch is one group commit: built and written by the committer, synced
// in the background, published in order by the publisher.
type batch struct {
	seq      uint64
	reqs     []*request
	startRev int64 // revision before the batch
	txRev    int64 // revision including the functions run so far
	leases   map[int64]*backend.Lease
	touched  []*keyIndex
	events   []backend.Event
	undo     []undoOp
	compact  int64
	relocs   []reloc // copied values, repointed at publication
	updates  int
	failed   int
	buf      []byte
	seg      *segment
	end      int64 // log offset after the batch's frame in seg
	synced   chan struct{}
	err      error // write or sync failure
	syncDur  time.Duration
}

type mark struct {
	buf, undo, touched, events int
	txRev                      int64
}

func (e *Engine) mark() mark {
	b := e.cb
	return mark{
		buf: len(b.buf), undo: len(b.undo), touched: len(b.touched),
		events: len(b.events), txRev: b.txRev,
	}
}

// rollback undoes everything the current batch did since m.
func (e *Engine) rollback(m mark) {
	b := e.cb
	e.mu.Lock()
	for i := len(b.undo) - 1; i >= m.undo; i-- {
		u := b.undo[i]
		switch u.kind {
		case undoRev:
			u.ki.revs = u.ki.revs[:len(u.ki.revs)-1]
			if len(u.ki.revs) == 0 {
				e.tree.Delete(u.ki)
			} else {
				e.tree.fix(u.ki)
			}
		case undoLease:
			if u.hadPrev {
				e.pendLeases[u.leaseID] = u.prev
			} else {
				delete(e.pendLeases, u.leaseID)
			}
			if u.hadBatch {
				b.leases[u.leaseID] = u.prevBatch
			} else {
				delete(b.leases, u.leaseID)
			}
		}
	}
	for len(e.recent) > 0 && e.recent[len(e.recent)-1].rev > m.txRev {
		e.recent[len(e.recent)-1] = recentKey{}
		e.recent = e.recent[:len(e.recent)-1]
	}
	if keep := int(m.txRev - e.revBase + 1); keep >= 0 && keep < len(e.revLocs) {
		clear(e.revLocs[keep:])
		e.revLocs = e.revLocs[:keep]
	}
	e.mu.Unlock()
	clear(b.undo[m.undo:])
	b.undo = b.undo[:m.undo]
	clear(b.touched[m.touched:])
	b.touched = b.touched[:m.touched]
	clear(b.events[m.events:])
	b.events = b.events[:m.events]
	b.buf = b.buf[:m.buf]
	b.txRev = m.txRev
}

// Update implements backend.Backend.
func (e *Engine) Update(ctx context.Context, fn func(backend.WriteTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	if err := e.enqueue(r); err != nil {
		return err
	}
	<-r.done
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// Compact implements backend.Backend.
func (e *Engine) Compact(ctx context.Context, rev int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rev <= 0 {
		return fmt.Errorf("compact to revision %d: %w", rev, backend.ErrCompacted)
	}
	r := &request{ctx: ctx, compact: rev, done: make(chan struct{})}
	if err := e.enqueue(r); err != nil {
		return err
	}
	<-r.done
	return r.err
}

func (e *Engine) enqueue(r *request) error {
	e.qmu.Lock()
	if e.closed {
		e.qmu.Unlock()
		return backend.ErrClosed
	}
	e.queue = append(e.queue, r)
	e.qmu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

func failAll(reqs []*request, err error) {
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
}

// run is the committer goroutine: it builds and writes batches and hands
// them to the publisher.
func (e *Engine) run() {
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		e.publisher()
	}()
	defer func() {
		close(e.pubCh)
		<-pubDone
		close(e.done)
	}()
	var reqs []*request
	for {
		select {
		case <-e.wake:
		case <-e.closing:
			e.qmu.Lock()
			reqs, e.queue = e.queue, nil
			e.qmu.Unlock()
			failAll(reqs, backend.ErrClosed)
			return
		}
		for {
			e.qmu.Lock()
			reqs, e.queue = e.queue, reqs[:0]
			e.qmu.Unlock()
			if len(reqs) == 0 {
				break
			}
			rest := reqs
			for len(rest) > 0 {
				rest = e.build(rest)
			}
			clear(reqs)
			reqs = reqs[:0]
		}
	}
}

func (e *Engine) failure() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *Engine) setFailed(err error) {
	if e.failed.CompareAndSwap(nil, &err) {
		e.log.Error("log write failed; refusing further writes", "err", err)
	}
}

// build runs one group commit's functions over reqs, writes the frame,
// starts its sync and queues it for publication. It returns the requests
// left for the next batch.
func (e *Engine) build(reqs []*request) (rest []*request) {
	if err := e.failure(); err != nil {
		failAll(reqs, fmt.Errorf("embedded engine stopped after a write failure: %w", err))
		return nil
	}
	if e.cur.size >= e.opts.SegmentSize {
		if err := e.rotate(); err != nil {
			failAll(reqs, err)
			return nil
		}
	}
	e.seq++
	b := &batch{
		seq: e.seq, startRev: e.headRev, txRev: e.headRev,
		leases: map[int64]*backend.Lease{}, synced: make(chan struct{}),
	}
	select {
	case b.buf = <-e.bufs:
	default:
		b.buf = make([]byte, 0, 64<<10)
	}
	b.buf = b.buf[:frameHeaderLen]
	e.cb = b

	for i, r := range reqs {
		if i > 0 && len(b.buf) >= defaultMaxBatchBytes {
			rest = reqs[i:]
			reqs = reqs[:i]
			break
		}
		if r.compact > 0 {
			r.err = e.stageCompaction(r.compact)
			continue
		}
		if r.copies != nil {
			e.stageCopy(r.copies)
			continue
		}
		if r.seal > 0 {
			e.stageSeal(r.seal)
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		m := e.mark()
		tx := &writeTx{e: e, ctx: r.ctx}
		err := e.runFn(r, tx)
		tx.finished = true
		if err != nil || r.panicked {
			e.rollback(m)
			r.err = err
			b.failed++
			continue
		}
		r.committed = true
		b.updates++
	}
	b.reqs = slices.Clone(reqs)
	e.cb = nil

	if len(b.buf) > frameHeaderLen {
		sealFrame(b.buf)
		start := e.opts.Clock()
		if _, err := e.cur.f.WriteAt(b.buf, e.cur.size); err != nil {
			b.err = fmt.Errorf("writing segment %d: %w", e.cur.id, err)
			e.setFailed(b.err)
			close(b.synced)
		} else {
			e.cur.size += int64(len(b.buf))
			b.seg = e.cur
			b.end = e.cur.size
			if e.opts.NoSync {
				b.syncDur = e.opts.Clock().Sub(start)
				close(b.synced)
			} else {
				go func() {
					if err := datasync(b.seg.f); err != nil {
						b.err = fmt.Errorf("syncing segment %d: %w", b.seg.id, err)
					}
					b.syncDur = e.opts.Clock().Sub(start)
					close(b.synced)
				}()
			}
		}
	} else {
		close(b.synced)
	}
	e.headRev = b.txRev
	e.mu.Lock()
	e.inflight = append(e.inflight, b)
	if b.seg != nil {
		b.seg.lastRev = b.txRev
	}
	e.mu.Unlock()
	e.pubCh <- b // blocks while maxInflight batches are unpublished
	if e.opts.inflight == 1 {
		<-b.synced // no overlapping syncs: the benchmark baseline
	}
	return rest
}

// publisher publishes batches in order once they are durable, then
// releases their callers.
func (e *Engine) publisher() {
	var broken error
	for b := range e.pubCh {
		<-b.synced
		if b.err == nil && broken != nil {
			b.err = broken
		}
		if b.err != nil {
			broken = b.err
			e.setFailed(b.err)
			e.mu.Lock()
			e.inflight = e.inflight[1:]
			e.mu.Unlock()
			for _, r := range b.reqs {
				if r.committed || (r.compact > 0 || r.copies != nil || r.seal > 0) && r.err == nil {
					r.committed = false
					r.err = fmt.Errorf("writing log: %w", b.err)
				}
				close(r.done)
			}
			continue
		}
		e.publish(b)
		if len(b.buf) > frameHeaderLen {
			e.recordStats(CommitInfo{Updates: b.updates, Failed: b.failed, Bytes: len(b.buf), Sync: b.syncDur})
			e.sinceCkpt.Add(int64(len(b.buf)))
			if e.checkpointDue() {
				e.kickMaintenance()
			}
		}
		for _, r := range b.reqs {
			if r.seal > 0 && r.err == nil {
				e.markFloor.Store(max(e.markFloor.Load(), r.seal))
			}
			close(r.done)
		}
		if cap(b.buf) <= 4*defaultMaxBatchBytes {
			select {
			case e.bufs <- b.buf[:0]:
			default:
			}
		}
	}
}

func (e *Engine) recordStats(info CommitInfo) {
	e.stats.Lock()
	s := &e.stats.Stats
	s.Commits++
	s.Updates += uint64(info.Updates)
	s.FailedUpdates += uint64(info.Failed)
	s.BytesWritten += uint64(info.Bytes)
	s.SyncTotal += info.Sync
	s.SyncMax = max(s.SyncMax, info.Sync)
	e.stats.Unlock()
	e.metrics.observe(info)
	if e.opts.OnCommit != nil {
		e.opts.OnCommit(info)
	}
}

// runFn runs an Update function, turning a panic into a re-panic in the
// caller's goroutine.
func (e *Engine) runFn(r *request, tx *writeTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked = true
			r.panicVal = p
			err = fmt.Errorf("update function panicked: %v", p)
		}
	}()
	return r.fn(tx)
}

func (e *Engine) rotate() error {
	s, err := e.createSegment(e.cur.id+1, e.headRev)
	if err != nil {
		return fmt.Errorf("rolling log segment: %w", err)
	}
	e.cur = s
	return nil
}

// publish makes a durable batch visible: lease changes, lease-key sets,
// the new revision and a compaction, then hands the events to the feed.
func (e *Engine) publish(b *batch) {
	e.mu.Lock()
	for id, l := range b.leases {
		if l == nil {
			delete(e.leases, id)
		} else {
			e.leases[id] = *l
		}
	}
	for id, p := range e.pendLeases {
		if p.seq <= b.seq {
			delete(e.pendLeases, id)
		}
	}
	e.inflight = e.inflight[1:]
	for _, ki := range b.touched {
		var oldLease, newLease int64
		if r, ok := ki.live(b.startRev); ok {
			oldLease = r.lease
		}
		if r, ok := ki.live(b.txRev); ok {
			newLease = r.lease
		}
		if oldLease == newLease {
			continue
		}
		if oldLease != 0 {
			if set := e.leaseKeys[oldLease]; set != nil {
				delete(set, ki.key)
				if len(set) == 0 {
					delete(e.leaseKeys, oldLease)
				}
			}
		}
		if newLease != 0 {
			set := e.leaseKeys[newLease]
			if set == nil {
				set = map[string]struct{}{}
				e.leaseKeys[newLease] = set
			}
			set[ki.key] = struct{}{}
		}
	}
	for _, rl := range b.relocs {
		if i := rl.ki.find(rl.mod); i >= 0 && rl.ki.revs[i].seg == rl.oldSeg && rl.ki.revs[i].off == rl.oldOff {
			rl.ki.revs[i].seg, rl.ki.revs[i].off = rl.newSeg, rl.newOff
		}
	}
	e.committed.Store(b.txRev)
	if b.seg != nil {
		e.pubPos = ckptPos{seg: b.seg.id, off: b.end}
	}
	e.trimRecent()
	compacted := b.compact > e.compactRev
	if compacted {
		// The index walk that drops old versions runs in bounded chunks on
		// the maintenance goroutine; reads below the new compaction point
		// fail from here on, so the versions it has not dropped yet are
		// unreachable.
		e.trimRevLocs(b.compact)
		e.compactRev = b.compact
	}
	e.mu.Unlock()
	if compacted {
		e.kickMaintenance()
	}
	if len(b.events) > 0 {
		e.feed.publish(b.events)
	}
}

// compactLocked drops history below rev in one walk of the index (replay
// only; a running engine walks in chunks, see maint.go). e.mu must be held
// for writing.
func (e *Engine) compactLocked(rev int64) {
	var empty []*keyIndex
	e.tree.Ascend(func(ki *keyIndex) bool {
		if ki.compact(rev) {
			empty = append(empty, ki)
		} else {
			e.tree.fix(ki)
		}
		return true
	})
	for _, ki := range empty {
		e.tree.Delete(ki)
	}
	e.trimRevLocs(rev)
	e.compactRev = rev
}

// trimRevLocs drops the revision table's entries at or below rev. e.mu
// must be held for writing.
func (e *Engine) trimRevLocs(rev int64) {
	if drop := rev - e.revBase + 1; drop > 0 {
		if drop > int64(len(e.revLocs)) {
			drop = int64(len(e.revLocs))
		}
		rest := len(e.revLocs) - int(drop)
		if cap(e.revLocs) > 1024 && cap(e.revLocs) > 4*rest {
			e.revLocs = append(make([]revLoc, 0, 2*rest), e.revLocs[drop:]...)
		} else {
			n := copy(e.revLocs, e.revLocs[drop:])
			e.revLocs = e.revLocs[:n]
		}
		e.revBase += drop
	}
}

func (e *Engine) stageCompaction(rev int64) error {
	b := e.cb
	if rev <= e.pendCompact {
		return fmt.Errorf("compact to revision %d (compacted at %d): %w", rev, e.pendCompact, backend.ErrCompacted)
	}
	if rev > b.txRev {
		return fmt.Errorf("compact to revision %d (current %d): %w", rev, b.txRev, backend.ErrFutureRevision)
	}
	b.buf = appendCompaction(b.buf, rev)
	b.compact = rev
	e.pendCompact = rev
	return nil
}

// writeTx is the WriteTx handed to Update functions. It runs on the
// committer goroutine.
type writeTx struct {
	e        *Engine
	ctx      context.Context
	finished bool
}

var errTxDone = errors.New("write transaction used after its update function returned")

func (t *writeTx) Revision() int64 { return t.e.cb.txRev }

func (t *writeTx) CompactRevision() int64 {
	t.e.mu.RLock()
	defer t.e.mu.RUnlock()
	return t.e.compactRev
}

func (t *writeTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	if t.finished {
		return backend.RangeResult{}, errTxDone
	}
	return t.e.rangeAt(ctx, opts, t.e.cb.txRev, true)
}

func (t *writeTx) Lease(ctx context.Context, id int64) (backend.Lease, error) {
	if t.finished {
		return backend.Lease{}, errTxDone
	}
	e := t.e
	e.mu.RLock()
	defer e.mu.RUnlock()
	if p, ok := e.pendLeases[id]; ok {
		if p.l == nil {
			return backend.Lease{}, fmt.Errorf("lease %d: %w", id, backend.ErrLeaseNotFound)
		}
		return *p.l, nil
	}
	if l, ok := e.leases[id]; ok {
		return l, nil
	}
	return backend.Lease{}, fmt.Errorf("lease %d: %w", id, backend.ErrLeaseNotFound)
}

func (t *writeTx) Leases(ctx context.Context) ([]backend.Lease, error) {
	if t.finished {
		return nil, errTxDone
	}
	e := t.e
	e.mu.RLock()
	out := make([]backend.Lease, 0, len(e.leases)+len(e.pendLeases))
	for id, l := range e.leases {
		if _, ok := e.pendLeases[id]; !ok {
			out = append(out, l)
		}
	}
	for _, p := range e.pendLeases {
		if p.l != nil {
			out = append(out, *p.l)
		}
	}
	e.mu.RUnlock()
	slices.SortFunc(out, func(a, b backend.Lease) int { return cmpInt(a.ID, b.ID) })
	return out, nil
}

func (t *writeTx) LeaseKeys(ctx context.Context, id int64) ([][]byte, error) {
	if t.finished {
		return nil, errTxDone
	}
	e := t.e
	rev := e.cb.txRev
	e.mu.RLock()
	// Candidates: the published set plus every key written since.
	cand := map[string]*keyIndex{}
	for k := range e.leaseKeys[id] {
		cand[k] = nil
	}
	for _, b := range e.inflight {
		for _, ki := range b.touched {
			cand[ki.key] = ki
		}
	}
	for _, ki := range e.cb.touched {
		cand[ki.key] = ki
	}
	var keys []string
	for k, ki := range cand {
		if ki == nil {
			var ok bool
			if ki, ok = e.tree.Get(k); !ok {
				continue
			}
		}
		if r, ok := ki.live(rev); ok && r.lease == id {
			keys = append(keys, k)
		}
	}
	e.mu.RUnlock()
	slices.Sort(keys)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out, nil
}

func (t *writeTx) PutLease(ctx context.Context, l backend.Lease) error {
	if t.finished {
		return errTxDone
	}
	if l.ID == 0 {
		return errors.New("put lease: lease ID 0 is reserved")
	}
	t.e.cb.buf = appendLeasePut(t.e.cb.buf, l)
	t.setLease(l.ID, &l)
	return nil
}

func (t *writeTx) DeleteLease(ctx context.Context, id int64) error {
	if t.finished {
		return errTxDone
	}
	if _, err := t.Lease(ctx, id); err != nil {
		return fmt.Errorf("delete lease: %w", err)
	}
	t.e.cb.buf = appendLeaseDelete(t.e.cb.buf, id)
	t.setLease(id, nil)
	return nil
}

func (t *writeTx) setLease(id int64, l *backend.Lease) {
	e := t.e
	b := e.cb
	e.mu.Lock()
	prev, had := e.pendLeases[id]
	prevBatch, hadBatch := b.leases[id]
	e.pendLeases[id] = pendingLease{l: l, seq: b.seq}
	e.mu.Unlock()
	b.undo = append(b.undo, undoOp{kind: undoLease, leaseID: id, hadPrev: had, prev: prev, hadBatch: hadBatch, prevBatch: prevBatch})
	b.leases[id] = l
}

func (t *writeTx) Apply(ctx context.Context, rev int64, events []backend.Event) error {
	if t.finished {
		return errTxDone
	}
	e := t.e
	b := e.cb
	if rev != b.txRev+1 {
		return fmt.Errorf("apply: revision %d, want %d", rev, b.txRev+1)
	}
	var size int
	for i := range events {
		ev := &events[i]
		if ev.KV.ModRevision != rev {
			return fmt.Errorf("apply: event %d has mod revision %d, want %d", i, ev.KV.ModRevision, rev)
		}
		if len(ev.KV.Key) == 0 {
			return fmt.Errorf("apply: event %d has an empty key", i)
		}
		if ev.Type != backend.EventPut && ev.Type != backend.EventDelete {
			return fmt.Errorf("apply: event %d has unknown type %d", i, ev.Type)
		}
		size += len(ev.KV.Key) + len(ev.KV.Value)
		if ev.PrevKV != nil {
			size += len(ev.PrevKV.Key) + len(ev.PrevKV.Value)
		}
	}

	// Encode the record; values get their final log offsets right away.
	base := e.cur.size // file offset of b.buf[0]
	recStart := len(b.buf)
	var pos int
	b.buf, pos = beginRecord(b.buf, recRevision)
	b.buf = binary.AppendUvarint(b.buf, uint64(rev))
	b.buf = binary.AppendUvarint(b.buf, uint64(len(events)))
	revs := make([]revision, len(events))
	for i := range events {
		kv := &events[i].KV
		if events[i].Type == backend.EventDelete {
			b.buf = append(b.buf, evDelete)
			b.buf = binary.AppendUvarint(b.buf, uint64(len(kv.Key)))
			b.buf = append(b.buf, kv.Key...)
			revs[i] = revision{mod: rev, tomb: true}
			continue
		}
		b.buf = append(b.buf, evPut)
		b.buf = binary.AppendUvarint(b.buf, uint64(len(kv.Key)))
		b.buf = append(b.buf, kv.Key...)
		b.buf = binary.AppendUvarint(b.buf, uint64(kv.CreateRevision))
		b.buf = binary.AppendUvarint(b.buf, uint64(kv.Version))
		b.buf = binary.AppendVarint(b.buf, kv.Lease)
		b.buf = binary.AppendUvarint(b.buf, uint64(len(kv.Value)))
		revs[i] = revision{
			mod: rev, create: kv.CreateRevision, version: kv.Version, lease: kv.Lease,
			seg: e.cur.id, off: base + int64(len(b.buf)), vlen: uint32(len(kv.Value)),
		}
		b.buf = append(b.buf, kv.Value...)
	}
	endRecord(b.buf, pos)
	loc := revLoc{seg: e.cur.id, off: base + int64(recStart+recordHeaderLen),
		n: uint32(len(b.buf) - recStart - recordHeaderLen)}

	// Copy the events for the feed: the caller may reuse its slices.
	slab := make([]byte, 0, size)
	cp := func(p []byte) []byte {
		if p == nil {
			return nil
		}
		slab = append(slab, p...)
		return slab[len(slab)-len(p) : len(slab) : len(slab)]
	}
	for i := range events {
		ev := events[i]
		ev.KV.Key = cp(ev.KV.Key)
		ev.KV.Value = cp(ev.KV.Value)
		if ev.PrevKV != nil {
			p := *ev.PrevKV
			p.Key, p.Value = cp(p.Key), cp(p.Value)
			ev.PrevKV = &p
		}
		b.events = append(b.events, ev)
	}

	e.mu.Lock()
	for i := range events {
		ki := e.tree.add(string(events[i].KV.Key), revs[i])
		e.recent = append(e.recent, recentKey{rev: rev, ki: ki})
		b.undo = append(b.undo, undoOp{kind: undoRev, ki: ki})
		b.touched = append(b.touched, ki)
	}
	e.revLocs = append(e.revLocs, loc)
	e.mu.Unlock()
	b.txRev = rev
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// moveItem is a version reclamation asks the committer to copy forward:
// the key's version at mod, whose value (already read) sits at seg/off.
type moveItem struct {
	key   string
	mod   int64
	seg   uint32
	off   int64
	value []byte
}

// reloc repoints a copied version at its new location once the copy is
// durable.
type reloc struct {
	ki             *keyIndex
	mod            int64
	oldSeg, newSeg uint32
	oldOff, newOff int64
}

// stageCopy appends a copy record with those items that are still worth
// copying at this point of the log: the index still has the version where
// the item says, and it is reachable at the newest compaction written so
// far (pendCompact). That rule is what makes the record safe to replay
// after the segments it was copied from are gone: replay, at this point of
// the log, has applied no compaction newer than pendCompact, so no copy can
// bring back a version a compaction before it had dropped.
func (e *Engine) stageCopy(items []moveItem) {
	b := e.cb
	base := e.cur.size // file offset of b.buf[0]
	buf, pos := beginRecord(b.buf, recCopy)
	countPos := len(buf)
	buf = append(buf, make([]byte, copyCountLen)...)
	n := 0
	e.mu.RLock()
	for i := range items {
		m := &items[i]
		ki, ok := e.tree.Get(m.key)
		if !ok {
			continue
		}
		j := ki.find(m.mod)
		if j < 0 {
			continue
		}
		r := ki.revs[j]
		if r.tomb || r.seg != m.seg || r.off != m.off || int(r.vlen) != len(m.value) || !ki.reachable(j, e.pendCompact) {
			continue
		}
		it := copyItem{Key: []byte(ki.key), Value: m.value, Mod: r.mod, Create: r.create, Version: r.version, Lease: r.lease}
		var vpos int
		buf, vpos = appendCopyItem(buf, &it)
		b.relocs = append(b.relocs, reloc{ki: ki, mod: r.mod, oldSeg: r.seg, oldOff: r.off, newSeg: e.cur.id, newOff: base + int64(vpos)})
		n++
	}
	e.mu.RUnlock()
	if n == 0 {
		return // b.buf is unchanged
	}
	putPaddedUvarint(buf[countPos:], uint64(n))
	endRecord(buf, pos)
	b.buf = buf
}

// stageSeal appends a mark (the compaction point so far and the lowest
// segment that must be kept) and a lease put for every live lease, so that
// the log from floor on holds everything replay needs.
func (e *Engine) stageSeal(floor uint32) {
	b := e.cb
	b.buf = appendMark(b.buf, e.pendCompact, floor)
	e.mu.RLock()
	leases := make([]backend.Lease, 0, len(e.leases)+len(e.pendLeases))
	for id, l := range e.leases {
		if _, ok := e.pendLeases[id]; !ok {
			leases = append(leases, l)
		}
	}
	for _, p := range e.pendLeases {
		if p.l != nil {
			leases = append(leases, *p.l)
		}
	}
	e.mu.RUnlock()
	slices.SortFunc(leases, func(a, b backend.Lease) int { return cmpInt(a.ID, b.ID) })
	for _, l := range leases {
		b.buf = appendLeasePut(b.buf, l)
	}
}

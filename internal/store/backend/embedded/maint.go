package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"
)

// Maintenance: the work a compaction leaves behind, done on one goroutine
// in bounded chunks so that writers never wait for more than one chunk.
//
//  1. The compaction walk drops, key by key, the versions a published
//     compaction made unreachable (publish only moves the compaction point
//     and trims the revision table). Each chunk of compactChunk keys holds
//     the index write lock once. On the way it adds up, per candidate
//     segment, the bytes of the values still reachable there.
//  2. Reclamation. Candidates are the oldest segments whose revision
//     records are all at or below the compaction point (never the active
//     one). The longest prefix of them whose reachable values are at most
//     reclaimRatio of its bytes is reclaimed: its reachable versions are
//     copied forward into the active log as copy records, through the
//     committer like any write (chunks of copyChunkItems / copyChunkBytes,
//     values read with pread outside every lock); then a mark (compaction
//     point, floor = the first segment kept) with every live lease is
//     committed; then the index is checked to point nowhere into the
//     prefix; then the files are unlinked oldest first, each unlink made
//     durable before the next, so that a crash leaves a contiguous log.
//
// Crash safety. Until the mark is durable nothing is deleted, and replay
// of copies whose originals still exist just repoints the index (same mod
// revision: no duplicates). Once it is, the kept log holds every version
// reachable at the compaction point (copies), the leases and the
// compaction point (mark), and each segment's header carries the revision
// it starts after, so replay can begin at whichever segment the deletion
// got to. Readers hold references on segment files, so an unlinked file
// is closed only when the last read from it is done.
const (
	compactChunk        = 1000
	copyChunkItems      = 256
	copyChunkBytes      = 256 << 10
	defaultReclaimRatio = 0.5
	// copyOverhead approximates a copied version's bytes besides key and
	// value, for the reclamation policy.
	copyOverhead = 24
)

var errStopped = errors.New("maintenance stopped")

func (e *Engine) kickMaintenance() {
	select {
	case e.maintWake <- struct{}{}:
	default:
	}
}

// waitMaintenance returns once every compaction published before the call
// has been walked and its reclamation has finished (tests and benchmarks).
func (e *Engine) waitMaintenance() {
	ch := make(chan struct{})
	select {
	case e.maintBarrier <- ch:
		select {
		case <-ch:
		case <-e.maintDone:
		}
	case <-e.maintDone:
	}
}

func (e *Engine) failpoint(name string) error {
	select {
	case <-e.closing:
		return fmt.Errorf("%w: %w", errStopped, errClosing)
	default:
	}
	if e.opts.hook != nil {
		if err := e.opts.hook(name); err != nil {
			return fmt.Errorf("%w at %s: %w", errStopped, name, err)
		}
	}
	return nil
}

var errClosing = errors.New("engine closing")

// maintain is the maintenance goroutine.
func (e *Engine) maintain() {
	defer close(e.maintDone)
	var walked int64
	stopped := false
	var waiters []chan struct{}
	for {
		select {
		case <-e.closing:
			return
		case <-e.maintWake:
		case ch := <-e.maintBarrier:
			waiters = append(waiters, ch)
		}
		for !stopped {
			e.mu.RLock()
			rev := e.compactRev
			e.mu.RUnlock()
			if rev <= walked {
				break
			}
			cands, live, ok := e.compactWalk(rev)
			if !ok {
				return
			}
			walked = rev
			if err := e.reclaim(rev, cands, live); err != nil {
				if errors.Is(err, errClosing) {
					return
				}
				if errors.Is(err, errStopped) {
					stopped = true
					break
				}
				e.log.Warn("reclaiming log segments failed; will retry after the next compaction", "err", err)
			}
		}
		if !stopped && e.wantCheckpoint() {
			select {
			case <-e.closing:
				return
			default:
			}
			if err := e.writeCheckpoint(); err != nil {
				e.log.Warn("writing index checkpoint failed; will retry", "err", err)
			}
		}
		for _, ch := range waiters {
			close(ch)
		}
		waiters = waiters[:0]
	}
}

// candidates returns the oldest segments whose revision records are all at
// or below rev, excluding the newest segment, in id order. e.mu must be
// held.
func (e *Engine) candidates(rev int64) []*segment {
	ids := make([]uint32, 0, len(e.segs))
	for id := range e.segs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []*segment
	for _, id := range ids[:max(len(ids)-1, 0)] {
		s := e.segs[id]
		if s.lastRev > rev {
			break
		}
		out = append(out, s)
	}
	return out
}

// compactWalk drops the versions compaction rev made unreachable, chunk by
// chunk, and returns the reclamation candidates with the bytes of
// reachable versions in each. ok is false if the engine is closing.
func (e *Engine) compactWalk(rev int64) (cands []*segment, live map[uint32]int64, ok bool) {
	e.mu.RLock()
	cands = e.candidates(rev)
	e.mu.RUnlock()
	live = make(map[uint32]int64, len(cands))
	isCand := func(id uint32) bool { return len(cands) > 0 && id >= cands[0].id && id <= cands[len(cands)-1].id }
	batch := make([]*keyIndex, 0, compactChunk)
	cursor, first := "", true
	for {
		select {
		case <-e.closing:
			return nil, nil, false
		default:
		}
		batch = batch[:0]
		e.mu.Lock()
		e.tree.AscendGreaterOrEqual(cursor, func(ki *keyIndex) bool {
			if !first && ki.key == cursor {
				return true
			}
			batch = append(batch, ki)
			return len(batch) < compactChunk
		})
		for _, ki := range batch {
			if ki.compact(rev) {
				e.tree.Delete(ki)
				continue
			}
			e.tree.fix(ki)
			for i := range ki.revs {
				if r := &ki.revs[i]; !r.tomb && isCand(r.seg) {
					live[r.seg] += int64(r.vlen) + int64(len(ki.key)) + copyOverhead
				}
			}
		}
		e.mu.Unlock()
		if len(batch) < compactChunk {
			for _, s := range cands {
				s.liveBytes.Store(live[s.id] + 1)
			}
			return cands, live, true
		}
		cursor, first = batch[len(batch)-1].key, false
		runtime.Gosched() // let a waiting writer take the lock
	}
}

func (e *Engine) reclaimRatio() float64 {
	if e.opts.reclaimRatio > 0 {
		return e.opts.reclaimRatio
	}
	return defaultReclaimRatio
}

// reclaim copies forward the reachable versions of the longest prefix of
// cands worth reclaiming and deletes its files.
func (e *Engine) reclaim(rev int64, cands []*segment, live map[uint32]int64) error {
	if e.failure() != nil || e.opts.noReclaim {
		return nil
	}
	k := -1
	var liveSum, sizeSum int64
	for i, s := range cands {
		liveSum += live[s.id]
		sizeSum += s.size
		if float64(liveSum) <= e.reclaimRatio()*float64(sizeSum) {
			k = i
		}
	}
	if k < 0 {
		return nil
	}
	cands = cands[:k+1]
	lo, hi := cands[0].id, cands[k].id
	start := time.Now()
	copied, versions, err := e.copyForward(cands)
	if err != nil {
		return err
	}
	if err := e.failpoint("seal"); err != nil {
		return err
	}
	if err := e.submit(&request{seal: hi + 1}); err != nil {
		return fmt.Errorf("writing reclamation mark: %w", err)
	}
	if err := e.failpoint("sealed"); err != nil {
		return err
	}
	if n, err := e.refsInto(lo, hi); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("%d reachable versions still in segments %d-%d after copying; keeping them", n, lo, hi)
	}
	var freed int64
	for _, s := range cands {
		e.mu.Lock()
		delete(e.segs, s.id)
		e.mu.Unlock()
		s.retire()
		if err := os.Remove(e.segPath(s.id)); err != nil {
			return fmt.Errorf("deleting segment %d: %w", s.id, err)
		}
		if !e.opts.NoSync {
			if err := syncDir(e.dir); err != nil {
				return err
			}
		}
		freed += s.size
		if err := e.failpoint("deleted"); err != nil {
			return err
		}
	}
	e.log.Info("reclaimed log segments", "segments", len(cands), "first", lo, "last", hi,
		"compactRevision", rev, "freedBytes", freed, "copiedBytes", copied, "copiedVersions", versions,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// submit runs a maintenance request through the committer and waits for
// it to be durable.
func (e *Engine) submit(r *request) error {
	r.ctx = context.Background()
	r.done = make(chan struct{})
	if err := e.enqueue(r); err != nil {
		return err
	}
	<-r.done
	return r.err
}

// copyForward copies every version reachable at the compaction point whose
// value sits in cands into the active log, chunk by chunk.
func (e *Engine) copyForward(cands []*segment) (bytes int64, versions int, err error) {
	lo, hi := cands[0].id, cands[len(cands)-1].id
	files := make(map[uint32]*segment, len(cands))
	for _, s := range cands {
		files[s.id] = s
	}
	cursor, first := "", true
	for done := false; !done; {
		if err := e.failpoint("copy"); err != nil {
			return bytes, versions, err
		}
		var items []moveItem
		var size int
		done = true
		e.mu.RLock()
		e.tree.AscendGreaterOrEqual(cursor, func(ki *keyIndex) bool {
			if !first && ki.key == cursor {
				return true
			}
			if len(items) >= copyChunkItems || size >= copyChunkBytes {
				done = false
				return false
			}
			cursor, first = ki.key, false
			for i := range ki.revs {
				r := &ki.revs[i]
				if r.tomb || r.seg < lo || r.seg > hi || !ki.reachable(i, e.compactRev) {
					continue
				}
				items = append(items, moveItem{key: ki.key, mod: r.mod, seg: r.seg, off: r.off, value: make([]byte, r.vlen)})
				size += int(r.vlen) + len(ki.key)
			}
			return true
		})
		e.mu.RUnlock()
		if len(items) == 0 {
			continue
		}
		for i := range items {
			it := &items[i]
			if len(it.value) > 0 {
				if err := readAt(files[it.seg].f, it.value, it.off); err != nil {
					return bytes, versions, fmt.Errorf("reading segment %d: %w", it.seg, err)
				}
			}
		}
		if err := e.submit(&request{copies: items}); err != nil {
			return bytes, versions, fmt.Errorf("copying live versions: %w", err)
		}
		bytes += int64(size)
		versions += len(items)
		runtime.Gosched()
	}
	return bytes, versions, nil
}

// refsInto counts the reachable versions whose values sit in segments
// lo..hi, walking the index in chunks.
func (e *Engine) refsInto(lo, hi uint32) (int, error) {
	n := 0
	cursor, first := "", true
	for done := false; !done; {
		select {
		case <-e.closing:
			return 0, fmt.Errorf("%w: %w", errStopped, errClosing)
		default:
		}
		done = true
		seen := 0
		e.mu.RLock()
		e.tree.AscendGreaterOrEqual(cursor, func(ki *keyIndex) bool {
			if !first && ki.key == cursor {
				return true
			}
			if seen == 4*compactChunk {
				done = false
				return false
			}
			seen++
			cursor, first = ki.key, false
			for i := range ki.revs {
				if r := &ki.revs[i]; !r.tomb && r.seg >= lo && r.seg <= hi && ki.reachable(i, e.compactRev) {
					n++
				}
			}
			return true
		})
		e.mu.RUnlock()
	}
	return n, nil
}

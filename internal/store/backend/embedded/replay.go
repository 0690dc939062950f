package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// listSegments returns the segment ids in dir, ascending.
func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading data dir: %w", err)
	}
	var ids []uint32
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".wal")
		if !ok || len(name) != 16 {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 32)
		if err != nil {
			continue
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	return ids, nil
}

// replay rebuilds the index: from the index checkpoint and the log after
// it if there is a usable checkpoint, else from the whole log. A damaged
// frame at the very end of the last segment (a commit that was never
// acknowledged) is cut off; damage anywhere else is ErrCorrupt.
func (e *Engine) replay() error {
	ids, err := listSegments(e.dir)
	if err != nil {
		return err
	}
	// A temporary checkpoint is one a crash interrupted before its rename.
	if err := os.Remove(filepath.Join(e.dir, checkpointTemp)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing unfinished checkpoint: %w", err)
	}
	if len(ids) == 0 {
		// A checkpoint without a log belongs to no log.
		if err := os.Remove(filepath.Join(e.dir, checkpointName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing stale checkpoint: %w", err)
		}
		s, err := e.createSegment(1, 1)
		if err != nil {
			return err
		}
		e.cur = s
		return nil
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] != ids[i-1]+1 {
			return corruptf("segment %d follows segment %d", ids[i], ids[i-1])
		}
	}
	if e.opts.CheckpointBytes >= 0 {
		start := time.Now()
		ck, err := readCheckpoint(e.dir)
		if err == nil {
			var tail int64
			keys := len(ck.keys)
			if tail, err = e.replayFrom(ids, ck); err == nil {
				e.ckptSeg.Store(ck.pos.seg)
				e.lastCkptSize.Store(ck.size)
				e.log.Info("loaded index checkpoint", "revision", ck.rev, "keys", keys,
					"replayedBytes", tail, "revisionNow", e.committed.Load(), "took", time.Since(start).Round(time.Millisecond))
				return nil
			}
			err = fmt.Errorf("replaying the log after it: %w", err)
			e.resetIndex()
		}
		if !errors.Is(err, errNoCheckpoint) {
			e.log.Warn("not using the index checkpoint; replaying the whole log", "reason", err)
		}
	}
	_, err = e.replayFrom(ids, nil)
	return err
}

// resetIndex drops what a failed checkpoint load left, for a full replay.
func (e *Engine) resetIndex() {
	for _, s := range e.segs {
		s.close()
	}
	e.segs = map[uint32]*segment{}
	e.tree = newTree()
	e.leases = map[int64]backend.Lease{}
	e.leaseKeys = map[int64]map[string]struct{}{}
	e.revLocs, e.revBase, e.compactRev = nil, 2, 0
	e.committed.Store(1)
	e.sinceCkpt.Store(0)
}

// openSealed registers a segment the checkpoint covers whole, without
// reading its frames.
func (e *Engine) openSealed(id uint32) (*segment, error) {
	f, err := os.OpenFile(e.segPath(id), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening segment: %w", err)
	}
	s := &segment{id: id, f: f}
	e.segs[id] = s
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("segment %d: %w", id, err)
	}
	s.size = fi.Size()
	head := make([]byte, min(s.size, int64(segmentHeaderLen)))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("segment %d: %w", id, err)
	}
	if start, ok := parseSegmentHeader(head); ok {
		s.hdrLen, s.startRev = int64(segmentHeaderLen), start
	} else if id == 1 && len(head) >= len(segmentMagicV1) && string(head[:len(segmentMagicV1)]) == segmentMagicV1 {
		s.hdrLen, s.startRev = int64(len(segmentMagicV1)), 1
	} else {
		return nil, corruptf("segment %d has a bad header", id)
	}
	return s, nil
}

// replayFrom rebuilds the index from ck (nil: from nothing) and the log
// after it, and returns the log bytes it replayed.
func (e *Engine) replayFrom(ids []uint32, ck *checkpoint) (int64, error) {
	rp := replayer{e: e}
	first := 0
	if ck != nil {
		first = slices.Index(ids, ck.pos.seg)
		if first < 0 {
			return 0, fmt.Errorf("its segment %d is gone (segments %d-%d)", ck.pos.seg, ids[0], ids[len(ids)-1])
		}
		var prev *segment
		for _, id := range ids[:first] {
			s, err := e.openSealed(id)
			if err != nil {
				return 0, err
			}
			if prev != nil {
				prev.lastRev = s.startRev
			}
			prev = s
		}
		e.committed.Store(ck.rev)
		e.revBase, e.revLocs, e.compactRev = ck.revBase, ck.locs, ck.compact
		for _, l := range ck.leases {
			e.leases[l.ID] = l
		}
		e.tree = buildSorted(ck.keys)
		ck.keys = nil
		rp.floor = ck.floor
		rp.from, rp.tailSum = ck.pos.off, ck.tailSum
		rp.prevSealed = prev
	}
	for i := first; i < len(ids); i++ {
		if err := rp.segment(ids[i], ck == nil && i == 0, i == len(ids)-1, ck != nil && i == first); err != nil {
			return 0, err
		}
	}
	// Segments before the first one may only be missing if a mark (written
	// once their live data had been copied forward) says they could go.
	if ids[0] > 1 && ids[0] > rp.floor {
		return 0, corruptf("log starts at segment %d but nothing allowed deleting the segments before it", ids[0])
	}
	switch {
	case ck != nil && max(rp.compact, e.compactRev) > 0:
		// What a checkpoint holds may be partly compacted; compacting it
		// again drops every version the compaction point made
		// unreachable, including ones in segments reclaimed since.
		e.compactLocked(max(rp.compact, e.compactRev))
	case rp.compact > e.compactRev || rp.copied && e.compactRev > 0:
		e.compactLocked(max(rp.compact, e.compactRev))
	}
	if ck != nil {
		if err := e.checkRefs(); err != nil {
			return 0, err
		}
	}
	e.sinceCkpt.Store(rp.bytes)
	e.markFloor.Store(rp.floor)
	// Lease key sets from the current state.
	cur := e.committed.Load()
	e.tree.Ascend(func(ki *keyIndex) bool {
		if r, ok := ki.live(cur); ok && r.lease != 0 {
			set := e.leaseKeys[r.lease]
			if set == nil {
				set = map[string]struct{}{}
				e.leaseKeys[r.lease] = set
			}
			set[ki.key] = struct{}{}
		}
		return true
	})
	e.cur = e.segs[ids[len(ids)-1]]
	return rp.bytes, nil
}

// checkRefs checks that every version and revision record the index
// points to is in a segment that exists.
func (e *Engine) checkRefs() error {
	var err error
	e.tree.Ascend(func(ki *keyIndex) bool {
		for _, r := range ki.revs {
			if !r.tomb && r.vlen > 0 && e.segs[r.seg] == nil {
				err = fmt.Errorf("key %q revision %d has its value in missing segment %d", ki.key, r.mod, r.seg)
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	for i, l := range e.revLocs {
		if e.segs[l.seg] == nil {
			return fmt.Errorf("revision %d has its record in missing segment %d", e.revBase+int64(i), l.seg)
		}
	}
	return nil
}

type replayer struct {
	e       *Engine
	compact int64 // newest compaction seen, not yet applied
	added   int   // revisions indexed since the last applied compaction
	copied  bool  // copy records indexed since the last applied compaction
	floor   uint32
	body    []byte
	bytes   int64 // frame bytes replayed

	// Replay after a checkpoint: the first segment replayed starts at
	// from, and the log bytes before from must have checksum tailSum;
	// prevSealed is the segment before it, if any.
	from       int64
	tailSum    uint32
	prevSealed *segment
}

// segment replays one segment; resume says it is the checkpoint's segment,
// replayed from rp.from.
func (rp *replayer) segment(id uint32, first, last, resume bool) error {
	e := rp.e
	path := e.segPath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening segment: %w", err)
	}
	s := &segment{id: id, f: f}
	e.segs[id] = s
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	size := fi.Size()
	head := make([]byte, min(size, int64(segmentHeaderLen)))
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	if start, ok := parseSegmentHeader(head); ok {
		s.hdrLen = int64(segmentHeaderLen)
		if resume {
			s.startRev = start
		} else if first {
			e.committed.Store(start)
			e.revBase = start + 1
		} else if start != e.committed.Load() {
			return corruptf("segment %d starts after revision %d, the log before it ends at %d", id, start, e.committed.Load())
		}
	} else if len(head) >= len(segmentMagicV1) && string(head[:len(segmentMagicV1)]) == segmentMagicV1 {
		s.hdrLen = int64(len(segmentMagicV1))
		if resume {
			s.startRev = 1
		}
		if (first || resume) && id != 1 {
			return corruptf("segment %d has an old header without a start revision and no segment before it", id)
		}
	} else {
		if !last || size >= int64(segmentHeaderLen) {
			return corruptf("segment %d has a bad header", id)
		}
		// Crash while rolling to this segment: start it over.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("resetting segment %d: %w", id, err)
		}
		if err := writeSegmentHeader(f, e.committed.Load(), false); err != nil {
			return fmt.Errorf("resetting segment %d: %w", id, err)
		}
		s.hdrLen, s.size = int64(segmentHeaderLen), int64(segmentHeaderLen)
		s.startRev, s.lastRev = e.committed.Load(), e.committed.Load()
		return nil
	}
	if !resume {
		s.startRev = e.committed.Load()
	}
	if rp.prevSealed != nil {
		rp.prevSealed.lastRev = s.startRev
		rp.prevSealed = nil
	}
	defer func() { s.lastRev = e.committed.Load() }()

	off := s.hdrLen
	if resume {
		if rp.from < s.hdrLen || rp.from > size {
			return fmt.Errorf("checkpoint position %d outside segment %d (%d bytes)", rp.from, id, size)
		}
		if sum, err := tailSum(f, s.hdrLen, rp.from); err != nil || sum != rp.tailSum {
			return fmt.Errorf("the log before the checkpoint's position in segment %d is not the one it was taken from (%v)", id, err)
		}
		off = rp.from
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 1<<20)
	hdr := make([]byte, frameHeaderLen)
	torn := func(why string) error {
		if !last {
			return corruptf("segment %d offset %d: %s", id, off, why)
		}
		e.log.Warn("cutting off a torn write at the end of the log (never acknowledged)",
			"segment", id, "offset", off, "bytes", size-off, "reason", why)
		if err := f.Truncate(off); err != nil {
			return fmt.Errorf("truncating torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("truncating torn tail: %w", err)
		}
		s.size = off
		return nil
	}
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				s.size = off
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return torn("partial frame header")
			}
			return fmt.Errorf("reading segment %d: %w", id, err)
		}
		n, sum, ok := parseFrameHeader(hdr)
		end := off + frameHeaderLen + int64(n)
		if !ok {
			// A header that fails its own checksum cannot say where the
			// frame ends. At the tail it is a torn write only if nothing
			// but zeros follows (blocks allocated but never written).
			if last && isZero(hdr) && rp.zeroTail(r) {
				return torn("zero-filled tail")
			}
			return corruptf("segment %d offset %d: frame header checksum mismatch", id, off)
		}
		if n == 0 || n > maxFrameLen {
			return corruptf("segment %d offset %d: bad frame length %d", id, off, n)
		}
		if end > size {
			// The header is intact: this is the last write, cut short.
			return torn("frame extends past the end of the segment")
		}
		if cap(rp.body) < int(n) {
			rp.body = make([]byte, n)
		}
		body := rp.body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return fmt.Errorf("reading segment %d: %w", id, err)
		}
		if crc32.Checksum(body, castagnoli) != sum {
			if end == size {
				return torn("checksum mismatch in the last frame")
			}
			return corruptf("segment %d offset %d: checksum mismatch", id, off)
		}
		if err := rp.frame(s, off+frameHeaderLen, body); err != nil {
			return fmt.Errorf("segment %d offset %d: %w", id, off, err)
		}
		rp.bytes += end - off
		off = end
	}
}

func isZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// zeroTail reports whether the rest of r is zero bytes.
func (rp *replayer) zeroTail(r *bufio.Reader) bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// frame indexes the records of one frame whose body starts at file offset
// base.
func (rp *replayer) frame(s *segment, base int64, body []byte) error {
	e := rp.e
	err := walkRecords(body, func(typ byte, p []byte, off int) error {
		switch typ {
		case recRevision:
			want := e.committed.Load() + 1
			var evs []recEvent
			rev, err := decodeRevision(p, func(ev recEvent) error {
				evs = append(evs, ev)
				return nil
			})
			if err != nil {
				return err
			}
			if rev != want {
				return fmt.Errorf("%w: revision %d, want %d", errFormat, rev, want)
			}
			for _, ev := range evs {
				r := revision{mod: rev, tomb: ev.Delete}
				if !ev.Delete {
					r.create, r.version, r.lease = ev.Create, ev.Version, ev.Lease
					r.seg, r.off, r.vlen = s.id, base+int64(off+ev.ValOff), uint32(len(ev.Value))
				}
				e.tree.add(string(ev.Key), r)
			}
			e.revLocs = append(e.revLocs, revLoc{seg: s.id, off: base + int64(off), n: uint32(len(p))})
			e.committed.Store(rev)
			rp.added += len(evs)
		case recLeasePut:
			l, err := decodeLeasePut(p)
			if err != nil {
				return err
			}
			e.leases[l.ID] = l
		case recLeaseDelete:
			id, err := decodeLeaseDelete(p)
			if err != nil {
				return err
			}
			delete(e.leases, id)
		case recCompaction:
			rev, err := decodeCompaction(p)
			if err != nil {
				return err
			}
			if rev > e.committed.Load() || rev <= max(e.compactRev, rp.compact) {
				return fmt.Errorf("%w: compaction to %d at revision %d", errFormat, rev, e.committed.Load())
			}
			rp.compact = rev
			rp.maybeCompact()
		case recCopy:
			err := decodeCopy(p, func(it copyItem) error {
				if it.Mod > e.committed.Load() {
					return fmt.Errorf("%w: copy of revision %d at revision %d", errFormat, it.Mod, e.committed.Load())
				}
				r := revision{
					mod: it.Mod, create: it.Create, version: it.Version, lease: it.Lease,
					seg: s.id, off: base + int64(off+it.ValOff), vlen: uint32(len(it.Value)),
				}
				if ki, ok := e.tree.Get(string(it.Key)); ok {
					ki.put(r)
					e.tree.fix(ki)
				} else {
					e.tree.insertNew(&keyIndex{key: string(it.Key), revs: []revision{r}})
				}
				rp.added++
				return nil
			})
			if err != nil {
				return err
			}
			rp.copied = true
		case recMark:
			compact, floor, err := decodeMark(p)
			if err != nil {
				return err
			}
			if compact > e.committed.Load() || compact < max(e.compactRev, rp.compact) {
				return fmt.Errorf("%w: mark with compaction %d at revision %d (compacted at %d)",
					errFormat, compact, e.committed.Load(), max(e.compactRev, rp.compact))
			}
			rp.compact = compact
			rp.floor = max(rp.floor, floor)
			rp.maybeCompact()
		default:
			return fmt.Errorf("%w: unknown record type %d", errFormat, typ)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", backend.ErrCorrupt, err)
	}
	return nil
}

// maybeCompact applies the newest compaction seen once enough history has
// piled up to be worth a walk of the index (applying every compaction
// record as it comes would walk the index once per record).
func (rp *replayer) maybeCompact() {
	e := rp.e
	if rp.compact > e.compactRev && rp.added > e.tree.Len() {
		e.compactLocked(rp.compact)
		rp.added = 0
		rp.copied = false
	}
}

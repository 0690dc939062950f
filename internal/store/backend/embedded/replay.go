package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

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

// replay rebuilds the index from the log. A damaged frame at the very end
// of the last segment (a commit that was never acknowledged) is cut off;
// damage anywhere else is ErrCorrupt.
func (e *Engine) replay() error {
	ids, err := listSegments(e.dir)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		s, err := e.createSegment(1)
		if err != nil {
			return err
		}
		e.cur = s
		return nil
	}
	rp := replayer{e: e}
	for i, id := range ids {
		if i > 0 && id != ids[i-1]+1 {
			return corruptf("segment %d follows segment %d", id, ids[i-1])
		}
		if err := rp.segment(id, i == len(ids)-1); err != nil {
			return err
		}
	}
	if rp.compact > e.compactRev {
		e.compactLocked(rp.compact)
	}
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
	return nil
}

type replayer struct {
	e       *Engine
	compact int64 // newest compaction seen, not yet applied
	added   int   // revisions indexed since the last applied compaction
	body    []byte
}

func (rp *replayer) segment(id uint32, last bool) error {
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
	if size < int64(segmentHeaderLen) {
		if !last {
			return corruptf("segment %d is %d bytes, shorter than its header", id, size)
		}
		// Crash while rolling to this segment: start it over.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("resetting segment %d: %w", id, err)
		}
		if _, err := f.WriteAt([]byte(segmentMagic), 0); err != nil {
			return fmt.Errorf("resetting segment %d: %w", id, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("resetting segment %d: %w", id, err)
		}
		s.size = int64(segmentHeaderLen)
		return nil
	}
	magic := make([]byte, segmentHeaderLen)
	if _, err := f.ReadAt(magic, 0); err != nil {
		return fmt.Errorf("segment %d: %w", id, err)
	}
	if string(magic) != segmentMagic {
		return corruptf("segment %d has a bad header", id)
	}

	r := bufio.NewReaderSize(io.NewSectionReader(f, int64(segmentHeaderLen), size-int64(segmentHeaderLen)), 1<<20)
	off := int64(segmentHeaderLen)
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
				ki, ok := e.tree.Get(&keyIndex{key: string(ev.Key)})
				if !ok {
					ki = &keyIndex{key: string(ev.Key)}
					e.tree.ReplaceOrInsert(ki)
				}
				r := revision{mod: rev, tomb: ev.Delete}
				if !ev.Delete {
					r.create, r.version, r.lease = ev.Create, ev.Version, ev.Lease
					r.seg, r.off, r.vlen = s.id, base+int64(off+ev.ValOff), uint32(len(ev.Value))
				}
				ki.revs = append(ki.revs, r)
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
			// Applying every compaction costs a walk of the index; defer it
			// until enough history has piled up to be worth dropping.
			if rp.added > e.tree.Len() {
				e.compactLocked(rev)
				rp.added = 0
			}
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

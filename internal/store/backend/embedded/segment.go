package embedded

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
)

// Segment header.
//
//	header = magic:"KLSNWAL2" startrev:u64le crc:u32le
//
// startrev is the revision the log was at before the segment's first
// record, so that replay can begin at any segment once reclamation has
// deleted the ones before it; crc (CRC32C) covers magic and startrev.
// Segments written before the header carried a start revision begin with
// segmentMagicV1 alone; replay still reads them.
const (
	segmentMagic     = "KLSNWAL2"
	segmentMagicV1   = "KLSNWAL1"
	segmentHeaderLen = len(segmentMagic) + 8 + 4
)

func segmentHeader(startRev int64) []byte {
	h := make([]byte, segmentHeaderLen)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(startRev))
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(h[:16], castagnoli))
	return h
}

// parseSegmentHeader returns the start revision of a v2 header, or ok =
// false if h is not one.
func parseSegmentHeader(h []byte) (startRev int64, ok bool) {
	if len(h) < segmentHeaderLen || string(h[:8]) != segmentMagic {
		return 0, false
	}
	if crc32.Checksum(h[:16], castagnoli) != binary.LittleEndian.Uint32(h[16:]) {
		return 0, false
	}
	v := binary.LittleEndian.Uint64(h[8:])
	if v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}

// segment is one log file.
//
// Readers take a reference (acquire, under Engine.mu) on every segment they
// will pread from after dropping the lock; reclamation retires a segment
// (removes it from Engine.segs under the lock, then unlinks the file) and
// the file is closed when its last reader releases it.
type segment struct {
	id       uint32
	f        *os.File
	size     int64 // bytes durably written (the committer's write position)
	hdrLen   int64 // where the first frame starts
	startRev int64 // revision before the segment's first record
	// lastRev is the newest revision with a record in the segment
	// (startRev if none). Set under Engine.mu; final once the log has
	// rolled to a later segment.
	lastRev int64
	// liveBytes is 1 + the bytes of reachable versions the last
	// compaction walk counted in the segment; 0 until a walk covered it.
	liveBytes atomic.Int64

	refs      atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() {
	if s.refs.Add(-1) == 0 && s.retired.Load() {
		s.close()
	}
}

// retire closes the file once no reader holds it. The segment must no
// longer be reachable through Engine.segs.
func (s *segment) retire() {
	s.retired.Store(true)
	if s.refs.Load() == 0 {
		s.close()
	}
}

func (s *segment) close() error {
	s.closeOnce.Do(func() { s.closeErr = s.f.Close() })
	return s.closeErr
}

// segSet is the set of segments a reader holds references on.
type segSet map[uint32]*segment

// add acquires s for the set (once per segment). Engine.mu must be held.
func (ss segSet) add(e *Engine, id uint32) {
	if _, ok := ss[id]; ok {
		return
	}
	if s := e.segs[id]; s != nil {
		s.acquire()
		ss[id] = s
	}
}

func (ss segSet) release() {
	for _, s := range ss {
		s.release()
	}
}

func (ss segSet) file(id uint32) (*os.File, error) {
	s := ss[id]
	if s == nil {
		return nil, corruptf("data in missing segment %d", id)
	}
	return s.f, nil
}

// writeSegmentHeader writes (and unless noSync, syncs) a segment header.
func writeSegmentHeader(f *os.File, startRev int64, noSync bool) error {
	if _, err := f.WriteAt(segmentHeader(startRev), 0); err != nil {
		return fmt.Errorf("writing segment header: %w", err)
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing segment: %w", err)
		}
	}
	return nil
}

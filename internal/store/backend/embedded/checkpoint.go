package embedded

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Index checkpoint.
//
// A checkpoint is the index as of a place in the log (the end of a
// published group commit): every key's revisions up to that revision, the
// revision table, the leases and the compaction point. Open loads it and
// replays only the log after that place, instead of reading and
// checksumming every kept segment.
//
//	file   = magic:"KLSNIDX1" version:uvarint body crc:u32le
//	body   = seg:uvarint off:uvarint rev:uvarint compact:uvarint
//	         revbase:uvarint floor:uvarint tailcrc:u32le
//	         nleases:uvarint (id:varint ttl:varint expiry:varint)*
//	         nlocs:uvarint (seg:uvarint off:uvarint n:uvarint)*
//	         key* 0
//	key    = keylen:uvarint key nrevs:uvarint rev*      (keylen > 0)
//	rev    = mod:uvarint create:uvarint version:uvarint lease:varint
//	         tomb:u8 [seg:uvarint off:uvarint vlen:uvarint]   (if tomb = 0)
//
// crc (CRC32C) covers everything before it. seg/off is the log position
// the checkpoint stands for and rev the revision there; tailcrc is the
// CRC32C of the up to 64 log bytes before that position, so a checkpoint
// that does not belong to this log is not used. floor is the lowest
// segment that must exist: below it, segments were deleted or a published
// reclamation mark allows deleting them.
//
// It is written as checkpointTemp, fsync'ed, renamed over checkpointName
// and the directory fsync'ed, so a crash leaves the old file or the new
// one. Open uses the checkpoint only if it checks out: anything wrong with
// it (missing, damaged, another version, its segment reclaimed, the log
// after it not replaying, a reachable version in a missing segment) means
// a full replay, with a log line saying why.
//
// The index is walked in chunks of checkpointChunk keys under the read
// lock, so writers wait for one chunk at most. Changes that land between
// chunks are harmless: revisions above rev are left out (replay adds them
// back from the log), and what a compaction or reclamation published
// after the start changes only versions that the records after the
// checkpoint's position (the compaction, the copies) fix on replay, which
// then compacts the loaded index once more.
const (
	checkpointName    = "index.ckpt"
	checkpointTemp    = "index.ckpt.tmp"
	checkpointMagic   = "KLSNIDX1"
	checkpointVersion = 1
	checkpointChunk   = 4096
	checkpointTailLen = 64
	// DefaultCheckpointBytes is how much log an Engine writes between
	// index checkpoints, at least (see Options.CheckpointBytes).
	DefaultCheckpointBytes = 256 << 20
)

// ckptPos is where in the log a checkpoint stands.
type ckptPos struct {
	seg uint32
	off int64
}

// checkpoint is a decoded checkpoint file.
type checkpoint struct {
	pos     ckptPos
	rev     int64
	compact int64
	revBase int64
	floor   uint32
	tailSum uint32
	leases  []backend.Lease
	locs    []revLoc
	keys    []*keyIndex
	size    int64 // file size
}

// tailSum returns the CRC32C of the up to checkpointTailLen bytes before
// off in f (after the header at hdrLen).
func tailSum(f *os.File, hdrLen, off int64) (uint32, error) {
	start := max(hdrLen, off-checkpointTailLen)
	buf := make([]byte, off-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return 0, err
	}
	return crc32.Checksum(buf, castagnoli), nil
}

// checkpointDue reports whether enough log has been written since the
// last checkpoint for a new one: CheckpointBytes, or four times the last
// checkpoint's size if that is more (so checkpoints never add more than a
// quarter to the bytes written).
func (e *Engine) checkpointDue() bool {
	if e.opts.CheckpointBytes < 0 {
		return false
	}
	return e.sinceCkpt.Load() >= max(e.opts.CheckpointBytes, 4*e.lastCkptSize.Load())
}

// wantCheckpoint reports whether the maintenance goroutine should write a
// checkpoint: one is due, or reclamation deleted the segment the last one
// starts in (it can no longer be used).
func (e *Engine) wantCheckpoint() bool {
	if e.opts.CheckpointBytes < 0 {
		return false
	}
	if e.checkpointDue() {
		return true
	}
	seg := e.ckptSeg.Load()
	if seg == 0 {
		return false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.segs[seg] == nil
}

// writeCheckpoint writes a checkpoint of the index at the last published
// position.
func (e *Engine) writeCheckpoint() error {
	if e.failure() != nil {
		return nil
	}
	start := time.Now()
	path := filepath.Join(e.dir, checkpointTemp)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating checkpoint: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	sum := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)
	var buf []byte

	// The header, under the read lock: the published state.
	e.mu.RLock()
	pos, rev := e.pubPos, e.committed.Load()
	since := e.sinceCkpt.Load()
	s := e.segs[pos.seg]
	if s == nil {
		e.mu.RUnlock()
		return fmt.Errorf("writing checkpoint: segment %d is gone", pos.seg)
	}
	s.acquire()
	// Segments below floor may be missing: those a published mark allows
	// deleting, and those already gone.
	floor := pos.seg
	for id := range e.segs {
		floor = min(floor, id)
	}
	floor = max(floor, e.markFloor.Load())
	buf = append(buf, checkpointMagic...)
	buf = binary.AppendUvarint(buf, checkpointVersion)
	buf = binary.AppendUvarint(buf, uint64(pos.seg))
	buf = binary.AppendUvarint(buf, uint64(pos.off))
	buf = binary.AppendUvarint(buf, uint64(rev))
	buf = binary.AppendUvarint(buf, uint64(e.compactRev))
	buf = binary.AppendUvarint(buf, uint64(e.revBase))
	buf = binary.AppendUvarint(buf, uint64(floor))
	tailAt := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.AppendUvarint(buf, uint64(len(e.leases)))
	for _, l := range e.leases {
		buf = binary.AppendVarint(buf, l.ID)
		buf = binary.AppendVarint(buf, l.TTL)
		var exp int64
		if !l.Expiry.IsZero() {
			exp = l.Expiry.UnixNano()
		}
		buf = binary.AppendVarint(buf, exp)
	}
	locs := e.revLocs[:max(0, min(int64(len(e.revLocs)), rev-e.revBase+1))]
	buf = binary.AppendUvarint(buf, uint64(len(locs)))
	for _, l := range locs {
		buf = binary.AppendUvarint(buf, uint64(l.seg))
		buf = binary.AppendUvarint(buf, uint64(l.off))
		buf = binary.AppendUvarint(buf, uint64(l.n))
	}
	e.mu.RUnlock()
	ts, err := tailSum(s.f, s.hdrLen, pos.off)
	s.release()
	if err != nil {
		return fmt.Errorf("writing checkpoint: reading log tail: %w", err)
	}
	binary.LittleEndian.PutUint32(buf[tailAt:], ts)

	// The keys, chunk by chunk.
	cursor, first, keys := "", true, 0
	for {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("writing checkpoint: %w", err)
		}
		buf = buf[:0]
		n := 0
		e.mu.RLock()
		e.tree.AscendGreaterOrEqual(cursor, func(ki *keyIndex) bool {
			if !first && ki.key == cursor {
				return true
			}
			n++
			cursor, first = ki.key, false
			m := 0
			for m < len(ki.revs) && ki.revs[m].mod <= rev {
				m++
			}
			if m > 0 {
				buf = appendCheckpointKey(buf, ki.key, ki.revs[:m])
				keys++
			}
			return n < checkpointChunk
		})
		e.mu.RUnlock()
		if n < checkpointChunk {
			break
		}
		runtime.Gosched()
	}
	buf = append(buf, 0)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	if _, err := f.Write(binary.LittleEndian.AppendUint32(nil, sum.Sum32())); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	if !e.opts.NoSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing checkpoint: %w", err)
		}
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("closing checkpoint: %w", err)
	}
	f = nil
	if err := e.hookPoint("checkpoint-written"); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(e.dir, checkpointName)); err != nil {
		return fmt.Errorf("installing checkpoint: %w", err)
	}
	if !e.opts.NoSync {
		if err := syncDir(e.dir); err != nil {
			return err
		}
	}
	e.lastCkptSize.Store(size)
	e.ckptSeg.Store(pos.seg)
	e.ckpts.Add(1)
	e.sinceCkpt.Add(-since)
	e.log.Info("wrote index checkpoint", "revision", rev, "segment", pos.seg, "offset", pos.off,
		"keys", keys, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// hookPoint calls the checkpoint test hook at a named point, if one is
// set.
func (e *Engine) hookPoint(name string) error {
	if e.opts.ckptHook != nil {
		if err := e.opts.ckptHook(name); err != nil {
			return fmt.Errorf("stopped at %s: %w", name, err)
		}
	}
	return nil
}

func appendCheckpointKey(buf []byte, key string, revs []revision) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	buf = binary.AppendUvarint(buf, uint64(len(revs)))
	for i := range revs {
		r := &revs[i]
		buf = binary.AppendUvarint(buf, uint64(r.mod))
		buf = binary.AppendUvarint(buf, uint64(r.create))
		buf = binary.AppendUvarint(buf, uint64(r.version))
		buf = binary.AppendVarint(buf, r.lease)
		if r.tomb {
			buf = append(buf, 1)
			continue
		}
		buf = append(buf, 0)
		buf = binary.AppendUvarint(buf, uint64(r.seg))
		buf = binary.AppendUvarint(buf, uint64(r.off))
		buf = binary.AppendUvarint(buf, uint64(r.vlen))
	}
	return buf
}

// errNoCheckpoint means there is no checkpoint file.
var errNoCheckpoint = errors.New("no checkpoint")

// readCheckpoint reads and checks the checkpoint file in dir. The file is
// read whole and decoded from memory (it holds tens of bytes per key).
func readCheckpoint(dir string) (*checkpoint, error) {
	data, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoCheckpoint
	}
	if err != nil {
		return nil, err
	}
	if len(data) < len(checkpointMagic)+5 {
		return nil, errors.New("checkpoint file too short")
	}
	if string(data[:len(checkpointMagic)]) != checkpointMagic {
		return nil, errors.New("not a checkpoint file (bad magic)")
	}
	body := data[:len(data)-4]
	d := decoder{b: body, pos: len(checkpointMagic)}
	if v := d.uvarint(); d.err == nil && v != checkpointVersion {
		return nil, fmt.Errorf("checkpoint version %d, this build reads version %d", v, checkpointVersion)
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, errors.New("checkpoint checksum mismatch")
	}
	u32 := func() uint32 {
		v := d.uvarint()
		if d.err == nil && v > 1<<32-1 {
			d.err = fmt.Errorf("%w: number out of range", errFormat)
		}
		return uint32(v)
	}
	ck := &checkpoint{size: int64(len(data))}
	ck.pos.seg = u32()
	ck.pos.off = d.rev()
	ck.rev = d.rev()
	ck.compact = d.rev()
	ck.revBase = d.rev()
	ck.floor = u32()
	if d.err == nil {
		if len(d.b)-d.pos < 4 {
			return nil, errors.New("checkpoint truncated")
		}
		ck.tailSum = binary.LittleEndian.Uint32(d.b[d.pos:])
		d.pos += 4
	}
	nl := d.uvarint()
	if d.err == nil && nl > uint64(len(body)) {
		return nil, fmt.Errorf("checkpoint lease count %d too large", nl)
	}
	for i := uint64(0); i < nl && d.err == nil; i++ {
		l := backend.Lease{ID: d.varint(), TTL: d.varint()}
		if exp := d.varint(); exp != 0 {
			l.Expiry = unixNano(exp)
		}
		ck.leases = append(ck.leases, l)
	}
	nlocs := d.uvarint()
	if d.err == nil && nlocs > uint64(len(body)) {
		return nil, fmt.Errorf("checkpoint revision record count %d too large", nlocs)
	}
	if d.err == nil {
		ck.locs = make([]revLoc, 0, nlocs)
	}
	for i := uint64(0); i < nlocs && d.err == nil; i++ {
		ck.locs = append(ck.locs, revLoc{seg: u32(), off: d.rev(), n: u32()})
	}
	if d.err == nil && (ck.revBase > ck.rev+1 || int64(len(ck.locs)) != ck.rev-ck.revBase+1 || ck.compact > ck.rev) {
		return nil, fmt.Errorf("checkpoint at revision %d has %d revision records from %d, compacted at %d",
			ck.rev, len(ck.locs), ck.revBase, ck.compact)
	}
	prev := ""
	for d.err == nil {
		kb, _ := d.bytes()
		if len(kb) == 0 || d.err != nil {
			break // the end marker (keys are never empty)
		}
		key := string(kb)
		if len(ck.keys) > 0 && key <= prev {
			return nil, fmt.Errorf("checkpoint keys out of order at %q", key)
		}
		prev = key
		nr := d.uvarint()
		if d.err == nil && (nr == 0 || nr > uint64(len(body))) {
			return nil, fmt.Errorf("checkpoint key %q has %d revisions", key, nr)
		}
		if d.err != nil {
			break
		}
		ki := &keyIndex{key: key, revs: make([]revision, nr)}
		for i := range ki.revs {
			r := &ki.revs[i]
			r.mod = d.rev()
			r.create = d.rev()
			r.version = d.rev()
			r.lease = d.varint()
			switch d.byte1() {
			case 1:
				r.tomb = true
			case 0:
				r.seg = u32()
				r.off = d.rev()
				r.vlen = u32()
			default:
				if d.err == nil {
					d.err = fmt.Errorf("%w: key %q: bad revision flag", errFormat, key)
				}
			}
			if d.err == nil && (r.mod > ck.rev || i > 0 && r.mod <= ki.revs[i-1].mod) {
				d.err = fmt.Errorf("%w: key %q: revision %d out of order", errFormat, key, r.mod)
			}
		}
		ck.keys = append(ck.keys, ki)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return ck, nil
}

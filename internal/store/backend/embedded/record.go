package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// On-disk format.
//
// A segment file starts with a header (segment.go) and holds frames back to back. A
// frame is what one group commit writes with one write and one fdatasync:
//
//	frame  = length:u32le bodycrc:u32le headercrc:u32le body[length]
//	body   = record*
//	record = type:u8 length:u32le payload[length]
//
// Checksums are CRC32C (Castagnoli); headercrc covers the first 8 bytes, so
// a length is trusted only when its header checks out. Record payloads:
//
//	revision     = rev:uvarint n:uvarint event*n
//	event        = type:u8 keylen:uvarint key                                  (delete)
//	             | type:u8 keylen:uvarint key create:uvarint version:uvarint
//	               lease:varint vallen:uvarint value                          (put)
//	lease put    = id:varint ttl:varint expiry:varint (unix ns, 0 = zero time)
//	lease delete = id:varint
//	compaction   = rev:uvarint
//	copy         = n:uvarint item*n
//	item         = keylen:uvarint key mod:uvarint create:uvarint version:uvarint
//	               lease:varint vallen:uvarint value
//	mark         = compact:uvarint floor:uvarint
//
// A copy record carries versions of keys written at earlier revisions
// whose values reclamation moved out of a segment it is about to delete;
// replay puts each back into the index at its own mod revision (replacing
// the location if the version is already indexed). A mark follows the last
// copy of a reclamation, with lease puts for every live lease: compact is
// the compaction point at that place in the log and segments below floor
// may be deleted.
//
// Records are self-describing, so replay can index where every value sits
// without keeping values in memory.

const (
	frameHeaderLen  = 12
	recordHeaderLen = 5
	// maxFrameLen bounds a frame body; larger lengths are treated as damage.
	maxFrameLen = 1 << 30
)

const (
	recRevision    byte = 1
	recLeasePut    byte = 2
	recLeaseDelete byte = 3
	recCompaction  byte = 4
	recCopy        byte = 5
	recMark        byte = 6
)

const (
	evPut    byte = 0
	evDelete byte = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFormat marks a record that does not parse; callers wrap it with
// backend.ErrCorrupt.
var errFormat = errors.New("malformed record")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backend.ErrCorrupt, fmt.Sprintf(format, args...))
}

// beginRecord appends a record header with a placeholder length and returns
// the buffer and the header's position for endRecord.
func beginRecord(buf []byte, typ byte) ([]byte, int) {
	pos := len(buf)
	return append(buf, typ, 0, 0, 0, 0), pos
}

// endRecord fills in the length of the record that starts at pos.
func endRecord(buf []byte, pos int) {
	binary.LittleEndian.PutUint32(buf[pos+1:], uint32(len(buf)-pos-recordHeaderLen))
}

// sealFrame fills in the frame header at buf[:frameHeaderLen] for the body
// that follows it.
func sealFrame(buf []byte) {
	body := buf[frameHeaderLen:]
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(body, castagnoli))
	binary.LittleEndian.PutUint32(buf[8:], crc32.Checksum(buf[:8], castagnoli))
}

// parseFrameHeader returns the body length and checksum of a frame header,
// and whether the header's own checksum is right.
func parseFrameHeader(h []byte) (n uint32, sum uint32, ok bool) {
	ok = crc32.Checksum(h[:8], castagnoli) == binary.LittleEndian.Uint32(h[8:])
	return binary.LittleEndian.Uint32(h[0:]), binary.LittleEndian.Uint32(h[4:]), ok
}

// walkRecords calls fn for each record of a frame body. off is the
// position of the payload within body.
func walkRecords(body []byte, fn func(typ byte, payload []byte, off int) error) error {
	pos := 0
	for pos < len(body) {
		if len(body)-pos < recordHeaderLen {
			return fmt.Errorf("%w: truncated record header", errFormat)
		}
		typ := body[pos]
		n := int(binary.LittleEndian.Uint32(body[pos+1:]))
		start := pos + recordHeaderLen
		if n < 0 || n > len(body)-start {
			return fmt.Errorf("%w: record length %d exceeds frame", errFormat, n)
		}
		if err := fn(typ, body[start:start+n], start); err != nil {
			return err
		}
		pos = start + n
	}
	return nil
}

// decoder reads varints from a payload.
type decoder struct {
	b   []byte
	pos int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad uvarint", errFormat)
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", errFormat)
		return 0
	}
	d.pos += n
	return v
}

// rev reads a revision-like number: a uvarint that must fit in int64.
func (d *decoder) rev() int64 {
	v := d.uvarint()
	if v > 1<<62 {
		d.err = fmt.Errorf("%w: number out of range", errFormat)
		return 0
	}
	return int64(v)
}

func (d *decoder) byte1() byte {
	if d.err != nil {
		return 0
	}
	if d.pos >= len(d.b) {
		d.err = fmt.Errorf("%w: truncated", errFormat)
		return 0
	}
	c := d.b[d.pos]
	d.pos++
	return c
}

// bytes returns the next n-length byte string (aliasing the payload) and
// its position.
func (d *decoder) bytes() ([]byte, int) {
	n := d.uvarint()
	if d.err != nil {
		return nil, 0
	}
	if n > uint64(len(d.b)-d.pos) {
		d.err = fmt.Errorf("%w: byte string overruns record", errFormat)
		return nil, 0
	}
	p := d.pos
	d.pos += int(n)
	return d.b[p:d.pos:d.pos], p
}

func (d *decoder) finish() error {
	if d.err == nil && d.pos != len(d.b) {
		d.err = fmt.Errorf("%w: %d trailing bytes", errFormat, len(d.b)-d.pos)
	}
	return d.err
}

// recEvent is one decoded event; Key and Value alias the payload and ValOff
// is the value's position within the payload.
type recEvent struct {
	Delete                 bool
	Key, Value             []byte
	ValOff                 int
	Create, Version, Lease int64
}

// decodeRevision decodes a revision record payload.
func decodeRevision(p []byte, fn func(ev recEvent) error) (int64, error) {
	d := decoder{b: p}
	rev := d.rev()
	n := d.uvarint()
	if d.err != nil {
		return 0, d.err
	}
	if n > uint64(len(p)) { // every event takes at least two bytes
		return 0, fmt.Errorf("%w: event count %d too large", errFormat, n)
	}
	for i := uint64(0); i < n; i++ {
		var ev recEvent
		switch d.byte1() {
		case evPut:
			ev.Key, _ = d.bytes()
			ev.Create = d.rev()
			ev.Version = d.rev()
			ev.Lease = d.varint()
			ev.Value, ev.ValOff = d.bytes()
		case evDelete:
			ev.Delete = true
			ev.Key, _ = d.bytes()
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: unknown event type", errFormat)
			}
		}
		if d.err != nil {
			return 0, d.err
		}
		if len(ev.Key) == 0 {
			return 0, fmt.Errorf("%w: empty key", errFormat)
		}
		if err := fn(ev); err != nil {
			return 0, err
		}
	}
	return rev, d.finish()
}

// appendLeasePut encodes a lease put record.
func appendLeasePut(buf []byte, l backend.Lease) []byte {
	buf, pos := beginRecord(buf, recLeasePut)
	buf = binary.AppendVarint(buf, l.ID)
	buf = binary.AppendVarint(buf, l.TTL)
	var exp int64
	if !l.Expiry.IsZero() {
		exp = l.Expiry.UnixNano()
	}
	buf = binary.AppendVarint(buf, exp)
	endRecord(buf, pos)
	return buf
}

func appendLeaseDelete(buf []byte, id int64) []byte {
	buf, pos := beginRecord(buf, recLeaseDelete)
	buf = binary.AppendVarint(buf, id)
	endRecord(buf, pos)
	return buf
}

func appendCompaction(buf []byte, rev int64) []byte {
	buf, pos := beginRecord(buf, recCompaction)
	buf = binary.AppendUvarint(buf, uint64(rev))
	endRecord(buf, pos)
	return buf
}

// copyItem is one key version carried forward by reclamation.
type copyItem struct {
	Key, Value                  []byte
	ValOff                      int // position of Value in the payload (decoding)
	Mod, Create, Version, Lease int64
}

// appendCopyItem appends one item to a copy record begun with
// beginRecord (the count is patched by endCopy) and returns the buffer and
// the position of the value in it.
func appendCopyItem(buf []byte, it *copyItem) ([]byte, int) {
	buf = binary.AppendUvarint(buf, uint64(len(it.Key)))
	buf = append(buf, it.Key...)
	buf = binary.AppendUvarint(buf, uint64(it.Mod))
	buf = binary.AppendUvarint(buf, uint64(it.Create))
	buf = binary.AppendUvarint(buf, uint64(it.Version))
	buf = binary.AppendVarint(buf, it.Lease)
	buf = binary.AppendUvarint(buf, uint64(len(it.Value)))
	pos := len(buf)
	return append(buf, it.Value...), pos
}

// copyCountLen is the fixed width of a copy record's item count: a
// uvarint padded to 5 bytes so it can be filled in after the items.
const copyCountLen = 5

func putPaddedUvarint(b []byte, v uint64) {
	for i := 0; i < copyCountLen-1; i++ {
		b[i] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	b[copyCountLen-1] = byte(v)
}

func decodeCopy(p []byte, fn func(it copyItem) error) error {
	d := decoder{b: p}
	n := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if n > uint64(len(p)) {
		return fmt.Errorf("%w: copy count %d too large", errFormat, n)
	}
	for i := uint64(0); i < n; i++ {
		var it copyItem
		it.Key, _ = d.bytes()
		it.Mod = d.rev()
		it.Create = d.rev()
		it.Version = d.rev()
		it.Lease = d.varint()
		it.Value, it.ValOff = d.bytes()
		if d.err != nil {
			return d.err
		}
		if len(it.Key) == 0 || it.Mod == 0 {
			return fmt.Errorf("%w: bad copy item", errFormat)
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return d.finish()
}

func appendMark(buf []byte, compact int64, floor uint32) []byte {
	buf, pos := beginRecord(buf, recMark)
	buf = binary.AppendUvarint(buf, uint64(compact))
	buf = binary.AppendUvarint(buf, uint64(floor))
	endRecord(buf, pos)
	return buf
}

func decodeMark(p []byte) (compact int64, floor uint32, err error) {
	d := decoder{b: p}
	compact = d.rev()
	f := d.uvarint()
	if d.err == nil && f > 1<<32-1 {
		d.err = fmt.Errorf("%w: segment floor out of range", errFormat)
	}
	return compact, uint32(f), d.finish()
}

func decodeLeasePut(p []byte) (backend.Lease, error) {
	d := decoder{b: p}
	l := backend.Lease{ID: d.varint(), TTL: d.varint()}
	if exp := d.varint(); exp != 0 {
		l.Expiry = unixNano(exp)
	}
	return l, d.finish()
}

func decodeLeaseDelete(p []byte) (int64, error) {
	d := decoder{b: p}
	id := d.varint()
	return id, d.finish()
}

func decodeCompaction(p []byte) (int64, error) {
	d := decoder{b: p}
	rev := d.rev()
	return rev, d.finish()
}

// decodeFrame checks a whole frame (header + body) and decodes every
// record in it. It is what replay does per frame, minus the index updates,
// and is the target of FuzzDecodeFrame.
func decodeFrame(frame []byte) error {
	if len(frame) < frameHeaderLen {
		return fmt.Errorf("%w: short frame", errFormat)
	}
	n, sum, ok := parseFrameHeader(frame)
	if !ok {
		return fmt.Errorf("%w: frame header checksum mismatch", errFormat)
	}
	if n == 0 || int64(n) != int64(len(frame)-frameHeaderLen) {
		return fmt.Errorf("%w: frame length mismatch", errFormat)
	}
	body := frame[frameHeaderLen:]
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", errFormat)
	}
	return walkRecords(body, func(typ byte, p []byte, _ int) error {
		var err error
		switch typ {
		case recRevision:
			_, err = decodeRevision(p, func(recEvent) error { return nil })
		case recLeasePut:
			_, err = decodeLeasePut(p)
		case recLeaseDelete:
			_, err = decodeLeaseDelete(p)
		case recCompaction:
			_, err = decodeCompaction(p)
		case recCopy:
			err = decodeCopy(p, func(copyItem) error { return nil })
		case recMark:
			_, _, err = decodeMark(p)
		default:
			err = fmt.Errorf("%w: unknown record type %d", errFormat, typ)
		}
		return err
	})
}

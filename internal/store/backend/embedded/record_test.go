package embedded

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// frameOf builds a frame holding one record of each kind.
func frameOf() []byte {
	buf := make([]byte, frameHeaderLen)
	buf, pos := beginRecord(buf, recRevision)
	buf = binary.AppendUvarint(buf, 7)
	buf = binary.AppendUvarint(buf, 2)
	buf = append(buf, evPut)
	buf = binary.AppendUvarint(buf, 3)
	buf = append(buf, "k\x00\xff"...)
	buf = binary.AppendUvarint(buf, 5)
	buf = binary.AppendUvarint(buf, 2)
	buf = binary.AppendVarint(buf, -1)
	buf = binary.AppendUvarint(buf, 2)
	buf = append(buf, 0, 0xff)
	buf = append(buf, evDelete)
	buf = binary.AppendUvarint(buf, 1)
	buf = append(buf, 'x')
	endRecord(buf, pos)
	buf = appendLeasePut(buf, backend.Lease{ID: 3, TTL: 10, Expiry: time.Unix(100, 5)})
	buf = appendLeaseDelete(buf, 3)
	buf = appendCompaction(buf, 6)
	sealFrame(buf)
	return buf
}

func TestRecordRoundTrip(t *testing.T) {
	frame := frameOf()
	if err := decodeFrame(frame); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var types []byte
	err := walkRecords(frame[frameHeaderLen:], func(typ byte, p []byte, off int) error {
		types = append(types, typ)
		switch typ {
		case recRevision:
			var evs []recEvent
			rev, err := decodeRevision(p, func(ev recEvent) error { evs = append(evs, ev); return nil })
			if err != nil || rev != 7 || len(evs) != 2 {
				t.Errorf("revision: %d %v %+v", rev, err, evs)
			}
			if string(evs[0].Key) != "k\x00\xff" || string(evs[0].Value) != "\x00\xff" ||
				evs[0].Create != 5 || evs[0].Version != 2 || evs[0].Lease != -1 ||
				string(p[evs[0].ValOff:evs[0].ValOff+2]) != "\x00\xff" {
				t.Errorf("put event: %+v", evs[0])
			}
			if !evs[1].Delete || string(evs[1].Key) != "x" {
				t.Errorf("delete event: %+v", evs[1])
			}
		case recLeasePut:
			l, err := decodeLeasePut(p)
			if err != nil || l.ID != 3 || l.TTL != 10 || !l.Expiry.Equal(time.Unix(100, 5)) {
				t.Errorf("lease: %+v %v", l, err)
			}
		}
		return nil
	})
	if err != nil || string(types) != "\x01\x02\x03\x04" {
		t.Fatalf("walk: %v %v", types, err)
	}
	// Every single-byte change and every truncation is caught.
	for i := range frame {
		bad := append([]byte(nil), frame...)
		bad[i] ^= 0x01
		if decodeFrame(bad) == nil {
			t.Errorf("flipping byte %d went unnoticed", i)
		}
		if decodeFrame(frame[:i]) == nil {
			t.Errorf("truncating to %d went unnoticed", i)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(frameOf())
	f.Add([]byte{})
	f.Add(make([]byte, frameHeaderLen))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = decodeFrame(data)
		// Bodies with a valid checksum exercise the record decoders.
		if len(data) > 0 {
			frame := append(make([]byte, frameHeaderLen), data...)
			sealFrame(frame)
			_ = decodeFrame(frame)
		}
	})
}

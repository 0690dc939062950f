package sqlcommon

import (
	"errors"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

func TestSharedReads(t *testing.T) {
	var s sharedReads
	r, own := s.join(10)
	if !own {
		t.Fatal("first join of revision 10 did not start a read")
	}
	if r2, own2 := s.join(10); own2 || r2 != r {
		t.Fatal("second join of revision 10 did not share the read in flight")
	}
	if _, own3 := s.join(11); !own3 {
		t.Fatal("join of revision 11 shared the read from 10")
	}
	evs := []backend.Event{{KV: backend.KeyValue{Key: []byte("k"), ModRevision: 10}}}
	s.finish(r, evs, 12, nil)
	if r2, own2 := s.join(10); own2 || r2 != r || r2.upto != 12 || len(r2.evs) != 1 {
		t.Fatalf("join after the read finished: own %v, upto %d, %d events", own2, r2.upto, len(r2.evs))
	}

	// A failed read, or one that found nothing, is not shared again.
	f, _ := s.join(20)
	s.finish(f, nil, 0, errors.New("connection lost"))
	if r2, own2 := s.join(20); !own2 || r2 == f {
		t.Fatal("a failed read was shared")
	}
	e, _ := s.join(30)
	s.finish(e, nil, 29, nil)
	if r2, own2 := s.join(30); !own2 || r2 == e {
		t.Fatal("a read that found nothing was shared")
	}

	// Only the most recent reads are kept.
	for i := range int64(2 * sharedReadsKept) {
		r, _ := s.join(100 + i)
		s.finish(r, nil, 100+i, nil)
	}
	if len(s.recent) != sharedReadsKept {
		t.Fatalf("%d reads kept, want %d", len(s.recent), sharedReadsKept)
	}
}

func TestSortEvents(t *testing.T) {
	ev := func(rev int64, key string) backend.Event {
		return backend.Event{KV: backend.KeyValue{ModRevision: rev, Key: []byte(key)}}
	}
	evs := []backend.Event{ev(3, "3.1"), ev(2, "2.0"), ev(3, "3.0"), ev(1, "1.0"), ev(2, "2.1")}
	subs := []int64{1, 0, 0, 0, 1}
	sortEvents(evs, subs)
	want := []string{"1.0", "2.0", "2.1", "3.0", "3.1"}
	for i, e := range evs {
		if string(e.KV.Key) != want[i] {
			t.Fatalf("event %d after sorting is %s, want order %v", i, e.KV.Key, want)
		}
	}
}

package sqlcommon

import (
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

func TestSortEvents(t *testing.T) {
	ev := func(rev int64) backend.Event { return backend.Event{KV: backend.KeyValue{ModRevision: rev}} }
	tests := []struct {
		name     string
		revs     []int64
		subs     []int64
		wantRevs []int64
	}{
		{"sorted", []int64{3, 3, 4}, []int64{0, 1, 0}, []int64{3, 3, 4}},
		{"revisions out of order", []int64{5, 3, 4}, []int64{0, 0, 0}, []int64{3, 4, 5}},
		{"sub-indexes out of order", []int64{3, 3, 2}, []int64{1, 0, 0}, []int64{2, 3, 3}},
		{"empty", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := make([]backend.Event, len(tt.revs))
			for i, r := range tt.revs {
				evs[i] = ev(r)
				evs[i].KV.Key = []byte{byte(r), byte(tt.subs[i])}
			}
			sortEvents(evs, append([]int64(nil), tt.subs...))
			for i, e := range evs {
				if e.KV.ModRevision != tt.wantRevs[i] {
					t.Fatalf("event %d has revision %d, want %d (all: %v)", i, e.KV.ModRevision, tt.wantRevs[i], evs)
				}
				if i > 0 && e.KV.ModRevision == evs[i-1].KV.ModRevision && e.KV.Key[1] < evs[i-1].KV.Key[1] {
					t.Fatalf("events %d and %d of revision %d out of sub-index order", i-1, i, e.KV.ModRevision)
				}
			}
		})
	}
}

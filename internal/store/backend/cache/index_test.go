package cache

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// TestIndexCountedRange checks limited ranges and counts, answered from the
// sorted key list or by a walk while it is stale, against a plain map,
// while keys are created, updated and deleted between reads.
func TestIndexCountedRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	ix := newIndex(1, 1<<30)
	live := map[string]bool{}
	key := func() []byte { return fmt.Appendf(nil, "k%03d", rng.IntN(300)) }
	rev := int64(1)
	fromList := 0 // reads answered with the sorted key list
	for round := range 400 {
		var evs []backend.Event
		seen := map[string]bool{}
		rev++
		for range 1 + rng.IntN(8) {
			k := key()
			if seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			kv := backend.KeyValue{Key: k, ModRevision: rev, CreateRevision: rev, Version: 1, Value: []byte("v")}
			if live[string(k)] && rng.IntN(3) == 0 {
				evs = append(evs, backend.Event{Type: backend.EventDelete, KV: kv})
				delete(live, string(k))
				continue
			}
			evs = append(evs, backend.Event{Type: backend.EventPut, KV: kv})
			live[string(k)] = true
		}
		ix.apply(evs)
		for range 6 {
			o := backend.RangeOptions{Key: key(), End: key(), Limit: int64(rng.IntN(40))}
			switch rng.IntN(4) {
			case 0:
				o.End = []byte{0}
			case 1:
				o.Key = []byte{}
			}
			o.CountOnly = rng.IntN(6) == 0
			if ix.sortedKeys() != nil {
				fromList++
			}
			res, _, ok := ix.rangeAt(o, rev)
			if !ok {
				t.Fatalf("round %d: rangeAt at the applied revision refused", round)
			}
			var want [][]byte
			for k := range live {
				if inRange([]byte(k), o) {
					want = append(want, []byte(k))
				}
			}
			if res.Count != int64(len(want)) {
				t.Fatalf("round %d %q..%q: count %d, want %d", round, o.Key, o.End, res.Count, len(want))
			}
			if o.CountOnly {
				if len(res.KVs) != 0 {
					t.Fatalf("round %d: count-only range returned %d kvs", round, len(res.KVs))
				}
				continue
			}
			n := len(want)
			if o.Limit > 0 {
				n = min(n, int(o.Limit))
			}
			if len(res.KVs) != n || res.More != (o.Limit > 0 && len(want) > int(o.Limit)) {
				t.Fatalf("round %d %q..%q limit %d: %d kvs more %v, want %d of %d", round, o.Key, o.End, o.Limit, len(res.KVs), res.More, n, len(want))
			}
			for i := 1; i < len(res.KVs); i++ {
				if bytes.Compare(res.KVs[i-1].Key, res.KVs[i].Key) >= 0 {
					t.Fatalf("round %d: keys out of order: %q then %q", round, res.KVs[i-1].Key, res.KVs[i].Key)
				}
			}
			for _, kv := range res.KVs {
				if !live[string(kv.Key)] || !inRange(kv.Key, o) {
					t.Fatalf("round %d: returned key %q not live in range", round, kv.Key)
				}
			}
		}
	}
	if fromList < 100 {
		t.Fatalf("only %d of 2,400 reads used the sorted key list", fromList)
	}
	t.Logf("%d of 2,400 reads used the sorted key list", fromList)
}

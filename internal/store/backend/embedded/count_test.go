package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// checkCounts compares, at revision rev, the count of a page (Limit) and of
// CountOnly with the number of keys a full walk of the same range returns,
// for a few ranges.
func checkCounts(ctx context.Context, tx backend.ReadTx, rev int64) error {
	ranges := [][2]string{
		{"k", "l"}, {"k03", "k09"}, {"k1", "k2"}, {"k05", "\x00"}, {"a", "\x00"}, {"k15", "k15\x00"},
	}
	for _, r := range ranges {
		opts := backend.RangeOptions{Key: []byte(r[0]), End: []byte(r[1]), Revision: rev}
		all, err := tx.Range(ctx, opts)
		if err != nil {
			return err
		}
		if all.Count != int64(len(all.KVs)) {
			return fmt.Errorf("[%q, %q) at %d: count %d, %d keys", r[0], r[1], rev, all.Count, len(all.KVs))
		}
		for _, lim := range []int64{1, 3} {
			o := opts
			o.Limit = lim
			page, err := tx.Range(ctx, o)
			if err != nil {
				return err
			}
			wantLen := min(lim, all.Count)
			if page.Count != all.Count || int64(len(page.KVs)) != wantLen || page.More != (all.Count > lim) {
				return fmt.Errorf("[%q, %q) at %d limit %d: count %d, %d keys, more %v; walk counts %d",
					r[0], r[1], rev, lim, page.Count, len(page.KVs), page.More, all.Count)
			}
			for i := range page.KVs {
				if string(page.KVs[i].Key) != string(all.KVs[i].Key) || string(page.KVs[i].Value) != string(all.KVs[i].Value) {
					return fmt.Errorf("[%q, %q) at %d limit %d: key %d is %q, walk has %q", r[0], r[1], rev, lim, i, page.KVs[i].Key, all.KVs[i].Key)
				}
			}
		}
		o := opts
		o.CountOnly = true
		c, err := tx.Range(ctx, o)
		if err != nil {
			return err
		}
		if c.Count != all.Count {
			return fmt.Errorf("[%q, %q) at %d count only: %d, walk counts %d", r[0], r[1], rev, c.Count, all.Count)
		}
	}
	return nil
}

// TestCountAtRevisions checks the tree-based counts against full walks at
// every readable revision, through puts, deletes, transactions, failed
// updates (rolled back) and compactions.
func TestCountAtRevisions(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true, SegmentSize: 16 << 10})
	defer e.Close()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 4))
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(20)) }
	var compacted int64
	for i := range 400 {
		var ops []backendtest.Op
		switch x := rng.IntN(10); {
		case x < 5:
			ops = append(ops, backendtest.Put(key(), fmt.Sprint(i)))
		case x < 7:
			ops = append(ops, backendtest.Del(key()))
		case x < 8:
			ops = append(ops, backendtest.Put(key(), "a"), backendtest.Del(key()), backendtest.Put(key(), "b"))
		default:
			// A failing update: its changes must leave no trace in the counts.
			err := e.Update(ctx, func(tx backend.WriteTx) error {
				if _, err := backendtest.ApplyOps(ctx, tx, backendtest.Put(key(), "x"), backendtest.Del(key())); err != nil {
					return err
				}
				return fmt.Errorf("rolled back")
			})
			if err == nil {
				t.Fatal("failing update succeeded")
			}
			continue
		}
		rev := backendtest.Write(t, e, ops...)
		if to := rev - int64(rng.IntN(10)); rev%50 == 0 && to > compacted {
			if err := e.Compact(ctx, to); err != nil {
				t.Fatal(err)
			}
			compacted = to
		}
	}
	err := e.View(ctx, func(tx backend.ReadTx) error {
		for rev := compacted; rev <= tx.Revision(); rev++ {
			if err := checkCounts(ctx, tx, rev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Inside an update, counts include the transaction's own writes.
	err = e.Update(ctx, func(tx backend.WriteTx) error {
		if _, err := backendtest.ApplyOps(ctx, tx, backendtest.Put("k03x", "new"), backendtest.Del("k04")); err != nil {
			return err
		}
		return checkCounts(ctx, tx, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCountConcurrentWrites reads pages and counts in views while writers
// change the keys, each view comparing counts with a walk at its own
// revision; views that read at an older revision than the head see the
// tree's head counts corrected by the recent writes.
func TestCountConcurrentWrites(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true})
	defer e.Close()
	ctx := t.Context()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("k%02d", rng.IntN(20))
				op := backendtest.Put(k, "v")
				if rng.IntN(3) == 0 {
					op = backendtest.Del(k)
				}
				backendtest.Write(t, e, op)
				if i%100 == 99 {
					_ = e.Compact(ctx, backendtest.CurrentRev(t, e)-20) // may lose to another writer's compaction
				}
			}
		})
	}
	for range 300 {
		err := e.View(ctx, func(tx backend.ReadTx) error {
			return checkCounts(ctx, tx, 0)
		})
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestCountBelowRecentFloor writes enough keys to push old revisions out
// of the recent-writes list, so that reads there walk, and checks that
// both ways agree.
func TestCountBelowRecentFloor(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true})
	defer e.Close()
	ctx := t.Context()
	backendtest.Write(t, e, backendtest.Put("k00", "a"), backendtest.Put("k10", "a"))
	old := backendtest.CurrentRev(t, e)
	// 40 revisions of 1,000 keys each, under prefix "m".
	for i := range 40 {
		var ops []backendtest.Op
		for j := range 1000 {
			ops = append(ops, backendtest.Put(fmt.Sprintf("m%02d-%04d", i, j), "v"))
		}
		backendtest.Write(t, e, ops...)
	}
	backendtest.Write(t, e, backendtest.Del("k00"), backendtest.Put("k05", "b"))
	e.mu.RLock()
	floor := e.recentFloor
	e.mu.RUnlock()
	if floor <= old {
		t.Fatalf("recent floor %d did not pass revision %d", floor, old)
	}
	err := e.View(ctx, func(tx backend.ReadTx) error {
		for _, rev := range []int64{old, floor - 1, floor, floor + 1, 0} {
			if err := checkCounts(ctx, tx, rev); err != nil {
				return err
			}
			res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("m"), End: []byte("n"), Revision: rev, CountOnly: true})
			if err != nil {
				return err
			}
			all, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("m"), End: []byte("n"), Revision: rev, KeysOnly: true})
			if err != nil {
				return err
			}
			if res.Count != int64(len(all.KVs)) {
				return fmt.Errorf("m* at %d: count %d, walk %d", rev, res.Count, len(all.KVs))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

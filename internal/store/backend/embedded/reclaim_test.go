package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// dumpState renders everything a reopened engine must reproduce: the state
// at every readable revision, the events after the compaction point (with
// PrevKV) and the leases with their keys.
func dumpState(t *testing.T, e *Engine) string {
	t.Helper()
	ctx := t.Context()
	var sb strings.Builder
	kv := func(kv *backend.KeyValue) {
		fmt.Fprintf(&sb, "%q=%q c%d m%d v%d l%d;", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	var rev, compact int64
	err := e.View(ctx, func(tx backend.ReadTx) error {
		rev, compact = tx.Revision(), tx.CompactRevision()
		fmt.Fprintf(&sb, "rev %d compact %d\n", rev, compact)
		for r := max(compact, 1); r <= rev; r++ {
			res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte{0}, End: []byte{0}, Revision: r})
			if err != nil {
				return fmt.Errorf("range at %d: %w", r, err)
			}
			fmt.Fprintf(&sb, "@%d count %d: ", r, res.Count)
			for i := range res.KVs {
				kv(&res.KVs[i])
			}
			sb.WriteByte('\n')
		}
		leases, err := tx.Leases(ctx)
		if err != nil {
			return err
		}
		for _, l := range leases {
			keys, err := tx.LeaseKeys(ctx, l.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, "lease %d ttl %d exp %d keys %q\n", l.ID, l.TTL, l.Expiry.UnixNano(), keys)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	events, err := e.Events(ctx, compact+1, rev)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	for _, ev := range events {
		fmt.Fprintf(&sb, "ev %d ", ev.Type)
		kv(&ev.KV)
		if ev.PrevKV != nil {
			sb.WriteString(" prev ")
			kv(ev.PrevKV)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// churn writes a deterministic mix of puts (empty values included),
// deletes, multi-key transactions and lease changes over a few keys,
// compacting to a little below the head every 40 revisions, and returns
// after n revisions or when stop reports true (checked after each
// compaction and its maintenance).
func churn(t *testing.T, e *Engine, seed uint64, n int, stop func() bool) {
	t.Helper()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 1))
	val := func() string { return strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(200)) }
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(16)) }
	exp := time.Unix(1700000000, 0)
	var compacted int64
	for i := 0; i < n; i++ {
		var ops []backendtest.Op
		switch x := rng.IntN(20); {
		case x < 12:
			ops = append(ops, backendtest.Put(key(), val()))
		case x < 14:
			ops = append(ops, backendtest.Put(key(), val()), backendtest.Put(key(), val()), backendtest.Del(key()))
		case x < 16:
			ops = append(ops, backendtest.PutWithLease(key(), val(), int64(1+rng.IntN(3))))
		case x < 17:
			id := int64(1 + rng.IntN(3))
			err := e.Update(ctx, func(tx backend.WriteTx) error {
				return tx.PutLease(ctx, backend.Lease{ID: id, TTL: int64(10 + i), Expiry: exp.Add(time.Duration(i) * time.Second)})
			})
			if err != nil {
				t.Fatal(err)
			}
			continue
		case x < 18:
			id := int64(1 + rng.IntN(3))
			err := e.Update(ctx, func(tx backend.WriteTx) error {
				if err := tx.DeleteLease(ctx, id); err != nil {
					return err
				}
				keys, err := tx.LeaseKeys(ctx, id)
				if err != nil {
					return err
				}
				var ops []backendtest.Op
				for _, k := range keys {
					ops = append(ops, backendtest.Del(string(k)))
				}
				if len(ops) == 0 {
					return nil
				}
				_, err = backendtest.ApplyOps(ctx, tx, ops...)
				return err
			})
			if err != nil && !errors.Is(err, backend.ErrLeaseNotFound) {
				t.Fatal(err)
			}
			continue
		default:
			ops = append(ops, backendtest.Del(key()))
		}
		rev := backendtest.Write(t, e, ops...)
		if to := rev - int64(rng.IntN(8)); rev%40 == 0 && to > compacted {
			if err := e.Compact(ctx, to); err != nil {
				t.Fatal(err)
			}
			compacted = to
			e.waitMaintenance()
			if stop != nil && stop() {
				return
			}
		}
	}
}

func segCount(t *testing.T, dir string) int {
	t.Helper()
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// TestReclaim checks that compaction lets old segments go, that the data
// survives it unchanged, and that a reopened engine reproduces it.
func TestReclaim(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 2 << 10, Logger: quiet}
	e := openTest(t, dir, opts)
	churn(t, e, 1, 1500, nil)
	e.waitMaintenance()
	created := e.cur.id
	kept := segCount(t, dir)
	if kept*3 > int(created) {
		t.Errorf("%d of %d segments kept after compaction", kept, created)
	}
	want := dumpState(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTest(t, dir, opts)
	if got := dumpState(t, e); got != want {
		t.Fatalf("after reopen:\n%s\nwant:\n%s", got, want)
	}
	// More writes and reclamations on top of a reclaimed log.
	churn(t, e, 2, 500, nil)
	want = dumpState(t, e)
	e.Close()
	e = openTest(t, dir, opts)
	defer e.Close()
	if got := dumpState(t, e); got != want {
		t.Fatalf("after second reopen:\n%s\nwant:\n%s", got, want)
	}
	t.Logf("%d segments written, %d kept", created, kept)
}

// TestReclaimCrash stops reclamation at each of its failure points in turn
// (before each copy chunk, before and after the mark, after each deleted
// file), as a crash there would, then reopens the directory and checks
// that nothing was lost or duplicated; then lets the reopened engine
// finish reclaiming and checks again.
func TestReclaimCrash(t *testing.T) {
	opts := Options{NoSync: true, SegmentSize: 2 << 10, Logger: quiet}
	// Count the failure points a clean run passes.
	var total atomic.Int64
	counting := opts
	counting.hook = func(string) error { total.Add(1); return nil }
	e := openTest(t, t.TempDir(), counting)
	churn(t, e, 7, 600, nil)
	e.Close()
	if total.Load() < 10 {
		t.Fatalf("only %d failure points passed", total.Load())
	}
	step := max(total.Load()/40, 1)
	seen := map[string]int{}
	for n := int64(1); n <= total.Load(); n += step {
		dir := t.TempDir()
		var calls atomic.Int64
		var fired atomic.Value
		crashing := opts
		crashing.hook = func(point string) error {
			if calls.Add(1) == n {
				fired.Store(point)
				return errors.New("injected crash")
			}
			return nil
		}
		e := openTest(t, dir, crashing)
		churn(t, e, 7, 600, func() bool { return fired.Load() != nil })
		point, _ := fired.Load().(string)
		if point == "" {
			t.Fatalf("failure point %d never reached", n)
		}
		seen[point]++
		want := dumpState(t, e)
		e.Close() // writes nothing: the files are as a crash at point left them
		e = openTest(t, dir, opts)
		if got := dumpState(t, e); got != want {
			t.Fatalf("crash at point %d (%s): after reopen:\n%s\nwant:\n%s", n, point, got, want)
		}
		e.waitMaintenance() // finishes the interrupted reclamation
		if got := dumpState(t, e); got != want {
			t.Fatalf("crash at point %d (%s): after resumed reclamation:\n%s\nwant:\n%s", n, point, got, want)
		}
		backendtest.Write(t, e, backendtest.Put("after", "crash"))
		want = dumpState(t, e)
		e.Close()
		e = openTest(t, dir, opts)
		if got := dumpState(t, e); got != want {
			t.Fatalf("crash at point %d (%s): after second reopen:\n%s\nwant:\n%s", n, point, got, want)
		}
		e.Close()
	}
	t.Logf("%d failure points, crashed at %v", total.Load(), seen)
}

// TestReclaimConcurrentReads reads values and events while reclamation
// moves values and deletes files under them.
func TestReclaimConcurrentReads(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true, SegmentSize: 4 << 10, Logger: quiet})
	defer e.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			err := e.View(ctx, func(tx backend.ReadTx) error {
				res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
				if err != nil {
					return err
				}
				for _, kv := range res.KVs {
					if want := fmt.Sprintf("%s@%d", kv.Key, kv.Version); !strings.HasPrefix(string(kv.Value), want) {
						return fmt.Errorf("%s: value %q, want prefix %q", kv.Key, kv.Value, want)
					}
				}
				return nil
			})
			if err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
	}()
	for i := range 3000 {
		key := fmt.Sprintf("k%02d", i%40)
		rev := int64(0)
		err := e.Update(ctx, func(tx backend.WriteTx) error {
			res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte(key), KeysOnly: true})
			if err != nil {
				return err
			}
			v := int64(1)
			if len(res.KVs) == 1 {
				v = res.KVs[0].Version + 1
			}
			rev, err = backendtest.ApplyOps(ctx, tx, backendtest.Put(key, fmt.Sprintf("%s@%d", key, v)+strings.Repeat("x", i%100)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := e.Compact(ctx, rev); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.waitMaintenance()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Segments > 6 {
		t.Errorf("%d segments left", st.Segments)
	}
}

// TestMissingSegmentsWithoutMark: deleting old segments by hand (no mark
// allowing it) is corruption, not a silently shorter history.
func TestMissingSegmentsWithoutMark(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 60, Options{NoSync: true, SegmentSize: 256})
	if err := os.Remove(e0path(dir)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{NoSync: true})
	if !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func e0path(dir string) string { return fmt.Sprintf("%s/%016x.wal", dir, 1) }

// TestCopyRespectsLaterCompaction: a version that reclamation collected
// while it was reachable, but that a compaction written before the copy
// made unreachable (the key was deleted and compacted meanwhile), must not
// be copied: once its segment is gone, replay would bring the key back.
func TestCopyRespectsLaterCompaction(t *testing.T) {
	dir := t.TempDir()
	// Maintenance stops at its first failure point; the test drives the
	// reclamation steps itself.
	opts := Options{NoSync: true, SegmentSize: 256, Logger: quiet,
		hook: func(string) error { return errors.New("manual") }}
	e := openTest(t, dir, opts)
	ctx := t.Context()
	backendtest.Write(t, e, backendtest.Put("k", "v0"))
	for i := range 50 {
		backendtest.Write(t, e, backendtest.Put("filler", fmt.Sprint(i)))
	}
	rev := backendtest.CurrentRev(t, e)
	if err := e.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	e.waitMaintenance()
	e.mu.RLock()
	ki, _ := e.tree.Get("k")
	r := ki.revs[0]
	e.mu.RUnlock()
	item := moveItem{key: "k", mod: r.mod, seg: r.seg, off: r.off, value: []byte("v0")}
	// The key is deleted and that compacted before the copy is written.
	del := backendtest.Write(t, e, backendtest.Del("k"))
	for i := range 50 {
		backendtest.Write(t, e, backendtest.Put("filler", fmt.Sprint(i)))
	}
	if err := e.Compact(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := e.submit(&request{copies: []moveItem{item}}); err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	cands := e.candidates(del)
	e.mu.RUnlock()
	if len(cands) == 0 || cands[0].id != r.seg {
		t.Fatalf("segment %d is not a candidate: %d candidates", r.seg, len(cands))
	}
	last := cands[len(cands)-1].id
	if err := e.submit(&request{seal: last + 1}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	for id := cands[0].id; id <= last; id++ {
		if err := os.Remove(e.segPath(id)); err != nil {
			t.Fatal(err)
		}
	}
	e = openTest(t, dir, Options{NoSync: true, Logger: quiet})
	defer e.Close()
	if res, err := backendtest.Range(t, e, backend.RangeOptions{Key: []byte("k")}); err != nil || len(res.KVs) != 0 {
		t.Fatalf("deleted key after reclamation: %+v %v", res.KVs, err)
	}
}

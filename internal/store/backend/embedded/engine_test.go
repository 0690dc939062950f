package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

func openTest(t *testing.T, dir string, opts Options) *Engine {
	t.Helper()
	e, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return e
}

func TestContract(t *testing.T) {
	backendtest.RunPersistent(t, func(t *testing.T, dir string) backend.Backend {
		return openTest(t, dir, Options{NoSync: true})
	})
}

// TestContractSmallSegments runs the suite with tiny segments so that
// commits roll across many files.
func TestContractSmallSegments(t *testing.T) {
	backendtest.RunPersistent(t, func(t *testing.T, dir string) backend.Backend {
		return openTest(t, dir, Options{NoSync: true, SegmentSize: 4 << 10})
	})
}

func TestUpdatePanicReachesCaller(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true})
	defer e.Close()
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("recovered %v, want kaboom", p)
			}
		}()
		_ = e.Update(t.Context(), func(tx backend.WriteTx) error {
			if _, err := backendtest.ApplyOps(t.Context(), tx, backendtest.Put("p", "x")); err != nil {
				return err
			}
			panic("kaboom")
		})
		t.Error("Update returned after a panic")
	}()
	if rev := backendtest.CurrentRev(t, e); rev != 1 {
		t.Errorf("revision %d after a panicking update, want 1 (the empty store)", rev)
	}
	if rev := backendtest.Write(t, e, backendtest.Put("q", "x")); rev != 2 {
		t.Errorf("next write at %d, want 2", rev)
	}
}

func TestUpdateCanceledContext(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true})
	defer e.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := e.Update(ctx, func(backend.WriteTx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("update with a canceled context: %v (ran %v)", err, ran)
	}
}

func TestWriteTxUnusableAfterReturn(t *testing.T) {
	e := openTest(t, t.TempDir(), Options{NoSync: true})
	defer e.Close()
	var leaked backend.WriteTx
	if err := e.Update(t.Context(), func(tx backend.WriteTx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := leaked.Apply(t.Context(), 1, nil); err == nil {
		t.Fatal("apply on a finished transaction succeeded")
	}
}

func TestStatsAndOnCommit(t *testing.T) {
	var mu sync.Mutex
	var infos []CommitInfo
	e := openTest(t, t.TempDir(), Options{NoSync: true, OnCommit: func(ci CommitInfo) {
		mu.Lock()
		infos = append(infos, ci)
		mu.Unlock()
	}})
	defer e.Close()
	for i := range 5 {
		backendtest.Write(t, e, backendtest.Put(fmt.Sprint("k", i), "v"))
	}
	err := e.Update(t.Context(), func(tx backend.WriteTx) error { return errors.New("no") })
	if err == nil {
		t.Fatal("failing update succeeded")
	}
	st := e.Stats()
	if st.Updates != 5 || st.Commits != 5 || st.Revision != 6 || st.Keys != 5 || st.BytesWritten == 0 || st.Segments != 1 {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(infos) != 5 || infos[0].Updates != 1 || infos[0].Bytes == 0 {
		t.Errorf("commit infos %+v", infos)
	}
	bs, err := e.Status(t.Context())
	if err != nil || bs.Engine != EngineName || bs.DBSize == 0 {
		t.Errorf("status %+v %v", bs, err)
	}
}

// TestCompactionReplay checks that replay applies many
// compaction records correctly (it batches them).
func TestCompactionReplay(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, Options{NoSync: true})
	for i := range 50 {
		rev := backendtest.Write(t, e, backendtest.Put("k", fmt.Sprint(i)), backendtest.Put(fmt.Sprint("u", i), "x"))
		if i%2 == 0 {
			backendtest.Write(t, e, backendtest.Del(fmt.Sprint("u", i)))
		}
		if i%5 == 4 {
			if err := e.Compact(t.Context(), rev); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := backendtest.Range(t, e, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	e.waitMaintenance() // the compaction walk drops keys in the background
	wantKeys := e.Stats().Keys
	e.Close()
	e = openTest(t, dir, Options{NoSync: true})
	defer e.Close()
	got, _ := backendtest.Range(t, e, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	if len(got.KVs) != len(want.KVs) || got.Revision != want.Revision {
		t.Fatalf("after reopen: %d keys at %d, want %d at %d", len(got.KVs), got.Revision, len(want.KVs), want.Revision)
	}
	if k := e.Stats().Keys; k != wantKeys {
		t.Errorf("index holds %d keys after replay, %d before", k, wantKeys)
	}
}

// TestStatusInUse checks DBSizeInUse: equal to DBSize before any
// compaction, and well below it once a compaction made most versions of an
// overwritten key unreachable (reclamation off, so the files stay).
func TestStatusInUse(t *testing.T) {
	ctx := t.Context()
	e := openTest(t, t.TempDir(), Options{NoSync: true, SegmentSize: 4 << 10, noReclaim: true})
	defer e.Close()
	value := bytes.Repeat([]byte("v"), 200)
	for range 200 {
		if err := e.Update(ctx, func(tx backend.WriteTx) error { return put(ctx, tx, []byte("/k"), value) }); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DBSizeInUse != st.DBSize {
		t.Fatalf("before compaction: in use %d, size %d; want equal", st.DBSizeInUse, st.DBSize)
	}
	if err := e.Compact(ctx, st.Revision); err != nil {
		t.Fatal(err)
	}
	e.waitMaintenance()
	st, err = e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 200 × 200 B of values, of which one version is reachable; the newest
	// segment (never walked) counts whole.
	if st.DBSizeInUse <= 0 || st.DBSizeInUse*4 > st.DBSize {
		t.Fatalf("after compaction: in use %d of %d bytes, want under a quarter", st.DBSizeInUse, st.DBSize)
	}
}

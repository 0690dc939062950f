package backendtest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// snapshot is everything a reopened engine must reproduce.
type snapshot struct {
	rev, compact int64
	states       map[int64][]backend.KeyValue // every readable revision
	events       []backend.Event              // compact+1 .. rev
	leases       []backend.Lease
	leaseKeys    map[int64][]string
}

func takeSnapshot(t *testing.T, b backend.Backend, leaseIDs ...int64) snapshot {
	t.Helper()
	ctx := testCtx(t)
	s := snapshot{states: map[int64][]backend.KeyValue{}, leaseKeys: map[int64][]string{}}
	err := b.View(ctx, func(tx backend.ReadTx) error {
		s.rev, s.compact = tx.Revision(), tx.CompactRevision()
		for rev := max(s.compact, 1); rev <= s.rev; rev++ {
			res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte{0}, End: []byte{0}, Revision: rev})
			if err != nil {
				return fmt.Errorf("range at %d: %w", rev, err)
			}
			s.states[rev] = res.KVs
		}
		var err error
		if s.leases, err = tx.Leases(ctx); err != nil {
			return err
		}
		for _, id := range leaseIDs {
			keys, err := tx.LeaseKeys(ctx, id)
			if err != nil {
				return err
			}
			for _, k := range keys {
				s.leaseKeys[id] = append(s.leaseKeys[id], string(k))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.events, err = b.Events(ctx, s.compact+1, s.rev); err != nil {
		t.Fatalf("events: %v", err)
	}
	return s
}

func (s snapshot) check(t *testing.T, got snapshot) {
	t.Helper()
	if got.rev != s.rev || got.compact != s.compact {
		t.Fatalf("reopened at revision %d compacted %d, want %d and %d", got.rev, got.compact, s.rev, s.compact)
	}
	for rev, want := range s.states {
		g := got.states[rev]
		if len(g) != len(want) {
			t.Errorf("state at %d: keys %q, want %q", rev, keysOf(g), keysOf(want))
			continue
		}
		for i := range g {
			checkKV(t, fmt.Sprintf("state at %d", rev), g[i], want[i])
		}
	}
	checkEvents(t, "events", got.events, s.events)
	leaseCmp := func(a, b backend.Lease) int { return int(a.ID - b.ID) }
	slices.SortFunc(got.leases, leaseCmp)
	slices.SortFunc(s.leases, leaseCmp)
	if !slices.EqualFunc(got.leases, s.leases, leaseEqual) {
		t.Errorf("leases %+v, want %+v", got.leases, s.leases)
	}
	for id, want := range s.leaseKeys {
		if !slices.Equal(got.leaseKeys[id], want) {
			t.Errorf("lease %d keys %q, want %q", id, got.leaseKeys[id], want)
		}
	}
}

func testReopen(t *testing.T, open PersistentOpener) {
	dir := t.TempDir()
	ctx := testCtx(t)
	b := open(t, dir)
	err := b.Update(ctx, func(tx backend.WriteTx) error {
		for _, l := range []backend.Lease{{ID: 7, TTL: 30, Expiry: leaseExpiry}, {ID: 8, TTL: 40}, {ID: 9, TTL: 50}} {
			if err := tx.PutLease(ctx, l); err != nil {
				return err
			}
		}
		_, err := ApplyOps(ctx, tx, PutWithLease("l7/a", "x", 7), PutWithLease("l8/a", "x", 8))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	Write(t, b, Put("a", "1"))
	Write(t, b, Put("a", "2"), Op{Key: []byte("bin\x00\xff"), Value: []byte{0, 0xff, 0}})
	Write(t, b, Put("b", "1"))
	compactAt := Write(t, b, Del("b"))
	Write(t, b, Put("a", "3"), PutWithLease("l7/b", "y", 7))
	Write(t, b, Put("l7/a", "no lease now"))
	if err := b.Update(ctx, func(tx backend.WriteTx) error { return tx.DeleteLease(ctx, 8) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, func(tx backend.WriteTx) error {
		return tx.PutLease(ctx, backend.Lease{ID: 9, TTL: 55, Expiry: leaseExpiry})
	}); err != nil {
		t.Fatal(err)
	}
	// A failed update must not come back after a restart.
	err = b.Update(ctx, func(tx backend.WriteTx) error {
		if _, err := ApplyOps(ctx, tx, Put("ghost", "x")); err != nil {
			return err
		}
		if err := tx.PutLease(ctx, backend.Lease{ID: 99, TTL: 1}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "failing update", err, errBoom)
	if err := b.Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	last := Write(t, b, Put("c", "after compaction"))
	want := takeSnapshot(t, b, 7, 8, 9)

	for round := range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		b = open(t, dir)
		t.Cleanup(func() { _ = b.Close() })
		got := takeSnapshot(t, b, 7, 8, 9)
		want.check(t, got)
		if _, ok := get(t, b, "ghost", 0); ok {
			t.Fatal("a failed update reappeared after reopening")
		}
		_, err := Range(t, b, backend.RangeOptions{Key: []byte("a"), Revision: compactAt - 1})
		wantErr(t, "range below compaction after reopen", err, backend.ErrCompacted)
		// Writing continues at the next revision.
		rev := Write(t, b, Put("c", fmt.Sprint("round", round)))
		if rev != last+1 {
			t.Fatalf("write after reopen at %d, want %d", rev, last+1)
		}
		last = rev
		want = takeSnapshot(t, b, 7, 8, 9)
	}
}

func testReopenEmpty(t *testing.T, open PersistentOpener) {
	dir := t.TempDir()
	b := open(t, dir)
	base := CurrentRev(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(t, dir)
	t.Cleanup(func() { _ = b.Close() })
	if got := CurrentRev(t, b); got != base {
		t.Fatalf("empty engine reopened at %d, want %d", got, base)
	}
	if rev := Write(t, b, Put("k", "v")); rev != base+1 {
		t.Fatalf("first write at %d, want %d", rev, base+1)
	}
}

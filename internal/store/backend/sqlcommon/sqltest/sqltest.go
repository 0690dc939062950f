// Package sqltest holds the tests and benchmarks the SQL engines share
// beyond the backend contract suite: several instances on one database,
// closing an instance under load, schema versioning, per-function
// atomicity inside a batch, byte order, and Update throughput.
package sqltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// DB describes an engine under test.
type DB struct {
	// NewURL creates an empty database (or schema) for one test, dropped
	// when the test ends, and returns the URL to open it.
	NewURL func(t testing.TB) string
	// Open opens an engine instance on url.
	Open func(ctx context.Context, url string) (backend.Backend, error)
	// Exec runs one SQL statement on the database at url (test setup).
	Exec func(t testing.TB, url, sql string)
	// QueryInt runs a query returning one integer on the database at url.
	QueryInt func(t testing.TB, url, sql string) int64
	// KillConns makes the server drop every connection to the database
	// at url (and no other test's).
	KillConns func(t testing.TB, url string)
}

func (db DB) open(t testing.TB, url string) backend.Backend {
	t.Helper()
	b, err := db.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Run runs every shared test.
func Run(t *testing.T, db DB) {
	t.Run("ByteOrder", func(t *testing.T) { testByteOrder(t, db) })
	t.Run("FunctionAtomicity", func(t *testing.T) { testAtomicity(t, db) })
	t.Run("SchemaVersion", func(t *testing.T) { testSchemaVersion(t, db) })
	t.Run("PrevKVAfterCompact", func(t *testing.T) { testPrevAfterCompact(t, db) })
	t.Run("TwoInstances", func(t *testing.T) { testTwoInstances(t, db) })
	t.Run("CloseUnderLoad", func(t *testing.T) { testCloseUnderLoad(t, db) })
	t.Run("LeaseAcrossInstances", func(t *testing.T) { testLeaseAcross(t, db) })
	t.Run("ConnectionLoss", func(t *testing.T) { testConnectionLoss(t, db) })
	t.Run("WatchLag", func(t *testing.T) { testWatchLag(t, db) })
	t.Run("CompactUnderLoad", func(t *testing.T) { testCompactUnderLoad(t, db) })
	t.Run("LeaseGrantInBatch", func(t *testing.T) { testLeaseGrantInBatch(t, db) })
	t.Run("Recreate", func(t *testing.T) { testRecreate(t, db) })
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testByteOrder(t *testing.T, db DB) {
	b := db.open(t, db.NewURL(t))
	keys := [][]byte{{0x00}, {0x01}, {'a'}, {'a', 0x00}, {'a', 0x00, 0x00}, {'a', 'b'}, {0x7f}, {0x80}, {0xfe, 0xff}, {0xff}, {0xff, 0x00}, {0xff, 0xff, 0xff}}
	shuffled := append([][]byte(nil), keys...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		backendtest.Write(t, b, backendtest.Op{Key: k, Value: append([]byte{0, 0xff}, k...)})
	}
	res, err := backendtest.Range(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != len(keys) || res.Count != int64(len(keys)) {
		t.Fatalf("got %d keys (count %d), want %d", len(res.KVs), res.Count, len(keys))
	}
	for i, kv := range res.KVs {
		if !bytes.Equal(kv.Key, keys[i]) || !bytes.Equal(kv.Value, append([]byte{0, 0xff}, keys[i]...)) {
			t.Errorf("key %d: got %x=%x, want %x", i, kv.Key, kv.Value, keys[i])
		}
	}
	// [a, a\x00\x00) holds a and a\x00.
	res, err = backendtest.Range(t, b, backend.RangeOptions{Key: []byte("a"), End: []byte{'a', 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != 2 {
		t.Errorf("[a, a\\0\\0): got %d keys, want 2", len(res.KVs))
	}
	// Empty value stays empty (not missing).
	backendtest.Write(t, b, backendtest.Op{Key: []byte("empty"), Value: nil})
	res, err = backendtest.Range(t, b, backend.RangeOptions{Key: []byte("empty")})
	if err != nil || len(res.KVs) != 1 || len(res.KVs[0].Value) != 0 {
		t.Errorf("empty value: %v %+v", err, res)
	}
}

// testAtomicity runs many concurrent Updates (so they share batches):
// some fail after Apply with their writes already sent to the database
// (a range read follows the write), some with the writes still queued;
// failed ones leave no trace, the others commit, revisions stay gapless.
func testAtomicity(t *testing.T, db DB) {
	b := db.open(t, db.NewURL(t))
	ctx := ctxT(t)
	start := backendtest.CurrentRev(t, b)
	errBoom := errors.New("boom")
	const n = 120
	fails := func(i int) bool { return i%4 < 2 }
	var wg sync.WaitGroup
	var okCount atomic.Int64
	for i := range n {
		wg.Go(func() {
			err := b.Update(ctx, func(tx backend.WriteTx) error {
				op := backendtest.Put(fmt.Sprintf("k%03d", i), "v")
				if _, err := backendtest.ApplyOps(ctx, tx, op); err != nil {
					return err
				}
				if i%2 == 0 {
					// A range read goes to the database, with the write.
					res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("k"), End: []byte("l")})
					if err != nil {
						return err
					}
					found := false
					for _, kv := range res.KVs {
						found = found || string(kv.Key) == string(op.Key)
					}
					if !found {
						return fmt.Errorf("own write %q not visible", op.Key)
					}
				}
				if fails(i) {
					return errBoom
				}
				return nil
			})
			switch {
			case fails(i) && !errors.Is(err, errBoom):
				t.Errorf("update %d: got %v, want boom", i, err)
			case !fails(i) && err != nil:
				t.Errorf("update %d: %v", i, err)
			case err == nil:
				okCount.Add(1)
			}
		})
	}
	wg.Wait()
	end := backendtest.CurrentRev(t, b)
	if end-start != okCount.Load() {
		t.Errorf("revision advanced by %d, want %d", end-start, okCount.Load())
	}
	res, err := backendtest.Range(t, b, backend.RangeOptions{Key: []byte("k"), End: []byte("l")})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range res.KVs {
		var i int
		fmt.Sscanf(string(kv.Key), "k%03d", &i)
		if fails(i) {
			t.Errorf("failed update left %q", kv.Key)
		}
	}
	if int64(len(res.KVs)) != okCount.Load() {
		t.Errorf("%d keys, want %d", len(res.KVs), okCount.Load())
	}
	evs, err := b.Events(ctx, start+1, end)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.KV.ModRevision != start+1+int64(i) {
			t.Fatalf("event %d at revision %d, want %d", i, ev.KV.ModRevision, start+1+int64(i))
		}
	}
	// The write cache must agree with the database after the rollbacks:
	// rewrite every key through Update and check versions.
	for i := range n {
		key := fmt.Sprintf("k%03d", i)
		err := b.Update(ctx, func(tx backend.WriteTx) error {
			r, err := tx.Range(ctx, backend.RangeOptions{Key: []byte(key)})
			if err != nil {
				return err
			}
			if got, want := len(r.KVs), map[bool]int{true: 0, false: 1}[fails(i)]; got != want {
				return fmt.Errorf("%s: %d versions in write view, want %d", key, got, want)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}

func testSchemaVersion(t *testing.T, db DB) {
	url := db.NewURL(t)
	b, err := db.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	backendtest.Write(t, b, backendtest.Put("a", "1"))
	b.Close()
	// Reopening an up-to-date database keeps its data.
	b = db.open(t, url)
	if res, err := backendtest.Range(t, b, backend.RangeOptions{Key: []byte("a")}); err != nil || len(res.KVs) != 1 {
		t.Fatalf("after reopen: %v %+v", err, res)
	}
	b.Close()
	db.Exec(t, url, "INSERT INTO schema_version (version) VALUES (999)")
	_, err = db.Open(t.Context(), url)
	if !errors.Is(err, backend.ErrSchemaVersion) {
		t.Fatalf("open with schema version 999: got %v, want ErrSchemaVersion", err)
	}
	t.Logf("refused with: %v", err)
}

// testPrevAfterCompact: an event at exactly the compaction revision still
// carries its PrevKV, and history below is gone.
func testPrevAfterCompact(t *testing.T, db DB) {
	b := db.open(t, db.NewURL(t))
	ctx := ctxT(t)
	backendtest.Write(t, b, backendtest.Put("a", "1"))
	backendtest.Write(t, b, backendtest.Put("b", "1"))
	backendtest.Write(t, b, backendtest.Del("b"))
	r := backendtest.Write(t, b, backendtest.Put("a", "2"))
	backendtest.Write(t, b, backendtest.Put("a", "3"))
	if err := b.Compact(ctx, r); err != nil {
		t.Fatal(err)
	}
	evs, err := b.Events(ctx, r, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].PrevKV == nil || string(evs[0].PrevKV.Value) != "1" {
		t.Fatalf("event at compact revision: %+v", evs)
	}
	if _, err := b.Events(ctx, r-1, r); !errors.Is(err, backend.ErrCompacted) {
		t.Fatalf("events below compaction: %v", err)
	}
	res, err := backendtest.Range(t, b, backend.RangeOptions{Key: []byte{0}, End: []byte{0}, Revision: r})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != "2" {
		t.Fatalf("range at compact revision: %v %+v", err, res)
	}
}

// writer runs Updates of fresh keys through b until stop, recording the
// acknowledged revisions.
type writer struct {
	mu   sync.Mutex
	acks map[int64]string
}

func (w *writer) run(ctx context.Context, b backend.Backend, prefix string, n int, errs chan<- error) {
	for i := range n {
		key := fmt.Sprintf("%s/%05d", prefix, i)
		var rev int64
		err := b.Update(ctx, func(tx backend.WriteTx) error {
			var err error
			rev, err = backendtest.ApplyOps(ctx, tx, backendtest.Put(key, "v"))
			return err
		})
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, backend.ErrClosed) {
				errs <- fmt.Errorf("%s: %w", key, err)
			}
			return
		}
		w.mu.Lock()
		w.acks[rev] = key
		w.mu.Unlock()
	}
}

// watchAll collects a Watch of b from afterRev and checks order and
// uniqueness as events arrive.
type watchAll struct {
	mu     sync.Mutex
	last   int64
	events map[int64]backend.Event
	errs   []string
	done   chan struct{}
	notify chan struct{}
}

func startWatch(t testing.TB, b backend.Backend, after int64) *watchAll {
	ctx, cancel := context.WithCancel(t.Context())
	w := &watchAll{last: after, events: map[int64]backend.Event{}, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	go func() {
		defer close(w.done)
		err := b.Watch(ctx, after, func(evs []backend.Event) {
			w.mu.Lock()
			for _, ev := range evs {
				r := ev.KV.ModRevision
				if r != w.last+1 {
					w.errs = append(w.errs, fmt.Sprintf("got revision %d after %d", r, w.last))
				}
				w.last = r
				w.events[r] = ev
			}
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		})
		if err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.errs = append(w.errs, "watch ended: "+err.Error())
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

func (w *watchAll) wait(t testing.TB, rev int64) {
	t.Helper()
	ctx := ctxT(t)
	for {
		w.mu.Lock()
		last, errs := w.last, append([]string(nil), w.errs...)
		w.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("watch: %v", errs)
		}
		if last >= rev {
			return
		}
		select {
		case <-w.notify:
		case <-w.done:
			t.Fatalf("watch ended at %d before %d", last, rev)
		case <-ctx.Done():
			t.Fatalf("timed out waiting for revision %d (last %d)", rev, last)
		}
	}
}

// testTwoInstances writes through two instances on one database; each
// instance's Watch sees every revision once, in order, with the events
// each writer acknowledged. Each instance has two watches, as a store has
// (the read cache's and the watch hub's), and they share change feed reads.
func testTwoInstances(t *testing.T, db DB) {
	url := db.NewURL(t)
	a, b := db.open(t, url), db.open(t, url)
	ctx := ctxT(t)
	start := backendtest.CurrentRev(t, a)
	wa, wb := startWatch(t, a, start), startWatch(t, b, start)
	wa2, wb2 := startWatch(t, a, start), startWatch(t, b, start)
	w := &writer{acks: map[int64]string{}}
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for i := range 8 {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		wg.Go(func() { w.run(ctx, inst, fmt.Sprintf("w%d", i), 60, errs) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	end := max(backendtest.CurrentRev(t, a), backendtest.CurrentRev(t, b))
	if end-start != int64(len(w.acks)) {
		t.Errorf("revision advanced by %d, %d writes acknowledged", end-start, len(w.acks))
	}
	for _, wt := range []*watchAll{wa, wb, wa2, wb2} {
		wt.wait(t, end)
		for rev, key := range w.acks {
			ev, ok := wt.events[rev]
			if !ok || string(ev.KV.Key) != key {
				t.Errorf("revision %d: watch has %q, writer acknowledged %q", rev, ev.KV.Key, key)
			}
		}
	}
}

// testCloseUnderLoad closes one of two instances while both take writes:
// every acknowledged write survives, the other instance's watch sees every
// revision once in order, and the closed instance's callers get errors,
// never a hang.
func testCloseUnderLoad(t *testing.T, db DB) {
	url := db.NewURL(t)
	a, b := db.open(t, url), db.open(t, url)
	ctx := ctxT(t)
	start := backendtest.CurrentRev(t, b)
	wb := startWatch(t, b, start)
	w := &writer{acks: map[int64]string{}}
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for i := range 6 {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		wg.Go(func() { w.run(ctx, inst, fmt.Sprintf("w%d", i), 80, errs) })
	}
	// Close a once it has committed some writes.
	for {
		w.mu.Lock()
		n := len(w.acks)
		w.mu.Unlock()
		if n >= 40 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no progress")
		case <-time.After(time.Millisecond):
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, func(backend.WriteTx) error { return nil }); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("update after close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	end := backendtest.CurrentRev(t, b)
	wb.wait(t, end)
	if int64(len(wb.events)) != end-start {
		t.Errorf("watch saw %d revisions, want %d", len(wb.events), end-start)
	}
	for rev, key := range w.acks {
		if ev, ok := wb.events[rev]; !ok || string(ev.KV.Key) != key {
			t.Errorf("acknowledged revision %d (%s) missing from watch", rev, key)
		}
		res, err := backendtest.Range(t, b, backend.RangeOptions{Key: []byte(key)})
		if err != nil || len(res.KVs) != 1 {
			t.Errorf("acknowledged %s lost: %v", key, err)
		}
	}
}

// testLeaseAcross: a lease granted through one instance is seen, and
// revoked, through another after the first is gone.
func testLeaseAcross(t *testing.T, db DB) {
	url := db.NewURL(t)
	a, b := db.open(t, url), db.open(t, url)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	if err := a.Update(ctx, func(tx backend.WriteTx) error {
		if err := tx.PutLease(ctx, backend.Lease{ID: 7, TTL: 60, Expiry: exp}); err != nil {
			return err
		}
		_, err := backendtest.ApplyOps(ctx, tx, backendtest.PutWithLease("l/1", "x", 7), backendtest.PutWithLease("l/2", "y", 7))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := b.Update(ctx, func(tx backend.WriteTx) error {
		l, err := tx.Lease(ctx, 7)
		if err != nil {
			return err
		}
		if l.TTL != 60 || !l.Expiry.Equal(exp) {
			return fmt.Errorf("lease %+v, want ttl 60 expiry %v", l, exp)
		}
		keys, err := tx.LeaseKeys(ctx, 7)
		if err != nil {
			return err
		}
		if len(keys) != 2 {
			return fmt.Errorf("lease keys %q", keys)
		}
		if err := tx.DeleteLease(ctx, 7); err != nil {
			return err
		}
		_, err = backendtest.ApplyOps(ctx, tx, backendtest.Del("l/1"), backendtest.Del("l/2"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := b.View(ctx, func(tx backend.ReadTx) error {
		_, err := tx.Lease(ctx, 7)
		return err
	})
	if !errors.Is(err, backend.ErrLeaseNotFound) {
		t.Fatalf("revoked lease: %v", err)
	}
}

// BenchmarkUpdate measures Update throughput with clients concurrent
// callers, each putting its own keys (one Range and one Apply per call,
// like a store Put).
func BenchmarkUpdate(b *testing.B, db DB, clients int) {
	be := db.open(b, db.NewURL(b))
	ctx := b.Context()
	value := bytes.Repeat([]byte("x"), 256)
	var seq atomic.Int64
	work := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Value
	for c := range clients {
		wg.Go(func() {
			for range work {
				key := fmt.Sprintf("/registry/bench/c%03d/%d", c, seq.Add(1)%1000)
				err := be.Update(ctx, func(tx backend.WriteTx) error {
					_, err := backendtest.ApplyOps(ctx, tx, backendtest.Op{Key: []byte(key), Value: value})
					return err
				})
				if err != nil {
					failed.Store(err)
				}
			}
		})
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		work <- struct{}{}
		n++
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "updates/s")
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// testConnectionLoss drops every database connection of two instances
// several times while they take writes: writes may fail meanwhile, but
// every acknowledged write survives, both watches see every revision once
// in order, and both instances recover.
func testConnectionLoss(t *testing.T, db DB) {
	url := db.NewURL(t)
	a, b := db.open(t, url), db.open(t, url)
	ctx := ctxT(t)
	start := backendtest.CurrentRev(t, a)
	wa, wb := startWatch(t, a, start), startWatch(t, b, start)
	w := &writer{acks: map[int64]string{}}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		inst := []backend.Backend{a, b}[i%2]
		wg.Go(func() {
			for j := range 150 {
				key := fmt.Sprintf("w%d/%05d", i, j)
				var rev int64
				err := inst.Update(ctx, func(tx backend.WriteTx) error {
					var err error
					rev, err = backendtest.ApplyOps(ctx, tx, backendtest.Put(key, "v"))
					return err
				})
				if err != nil {
					failed.Add(1)
					continue
				}
				w.mu.Lock()
				w.acks[rev] = key
				w.mu.Unlock()
			}
		})
	}
	for k := range 3 {
		for {
			w.mu.Lock()
			n := len(w.acks)
			w.mu.Unlock()
			if n >= 100*(k+1) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no progress after %d connection kills (%d acknowledged, %d failed)", k, n, failed.Load())
			case <-time.After(5 * time.Millisecond):
			}
		}
		db.KillConns(t, url)
	}
	wg.Wait()
	// Both instances recover: a write through each succeeds (retrying while
	// connections are re-established).
	var end int64
	for _, inst := range []backend.Backend{a, b} {
		for {
			var rev int64
			err := inst.Update(ctx, func(tx backend.WriteTx) error {
				var err error
				rev, err = backendtest.ApplyOps(ctx, tx, backendtest.Put("recovered", "yes"))
				return err
			})
			if err == nil {
				w.mu.Lock()
				w.acks[rev] = "recovered"
				w.mu.Unlock()
				end = max(end, rev)
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("instance did not recover: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	t.Logf("%d writes acknowledged, %d failed during connection loss", len(w.acks), failed.Load())
	for _, wt := range []*watchAll{wa, wb} {
		wt.wait(t, end)
		wt.mu.Lock()
		if int64(len(wt.events)) != end-start {
			t.Errorf("watch saw %d revisions, want %d", len(wt.events), end-start)
		}
		for rev, key := range w.acks {
			if ev, ok := wt.events[rev]; !ok || string(ev.KV.Key) != key {
				t.Errorf("acknowledged revision %d (%s) missing from watch", rev, key)
			}
		}
		wt.mu.Unlock()
	}
}

// testWatchLag measures how long a write through one instance takes to
// reach a Watch on another (the feed must push or poll fast; the p99
// target of 50 ms is a benchmark figure).
func testWatchLag(t *testing.T, db DB) {
	url := db.NewURL(t)
	a, b := db.open(t, url), db.open(t, url)
	ctx := ctxT(t)
	start := backendtest.CurrentRev(t, a)
	type stamp struct {
		rev int64
		at  time.Time
	}
	got := make(chan stamp, 1024)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Watch(wctx, start, func(evs []backend.Event) {
			now := time.Now()
			for _, ev := range evs {
				got <- stamp{ev.KV.ModRevision, now}
			}
		})
	}()
	const n = 200
	var lags []time.Duration
	for i := range n {
		var rev int64
		err := a.Update(ctx, func(tx backend.WriteTx) error {
			var err error
			rev, err = backendtest.ApplyOps(ctx, tx, backendtest.Put(fmt.Sprintf("lag/%d", i), "v"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		select {
		case s := <-got:
			if s.rev != rev {
				t.Fatalf("watch delivered %d, want %d", s.rev, rev)
			}
			lags = append(lags, max(0, s.at.Sub(committed)))
		case <-ctx.Done():
			t.Fatalf("revision %d never reached the other instance", rev)
		}
		if i%4 == 3 {
			// Let the feed go idle now and then (the MySQL poller backs off).
			time.Sleep(20 * time.Millisecond) // pacing the load, not synchronisation
		}
	}
	cancel()
	<-done
	slices.Sort(lags)
	p50, p99 := lags[len(lags)/2], lags[len(lags)*99/100]
	t.Logf("cross-instance watch lag over %d writes: p50 %v, p99 %v, max %v", n, p50, p99, lags[len(lags)-1])
	// The 50 ms target is measured by bench/store (docs/benchmarks.md), not
	// by a timed test; this bound only catches a feed that fell back to
	// slow polling (kine's 1 s), with room for a loaded CI machine.
	if p99 > 500*time.Millisecond {
		t.Errorf("cross-instance watch lag p99 %v: the change feed is not pushing or polling fast", p99)
	}
}

// testCompactUnderLoad builds history (many versions of few keys), then
// compacts it while writers run, and reports write latency before and
// during the compaction. History below the compaction point is gone
// afterwards, and reads at the compaction revision still work.
func testCompactUnderLoad(t *testing.T, db DB) {
	url := db.NewURL(t)
	be := db.open(t, url)
	ctx := ctxT(t)
	const keys, versions = 50, 60
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for v := range versions {
				err := be.Update(ctx, func(tx backend.WriteTx) error {
					_, err := backendtest.ApplyOps(ctx, tx, backendtest.Put(fmt.Sprintf("c/%02d", k), fmt.Sprint(v)))
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	target := backendtest.CurrentRev(t, be)
	measure := func(during func()) []time.Duration {
		var mu sync.Mutex
		var lats []time.Duration
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					begin := time.Now()
					err := be.Update(ctx, func(tx backend.WriteTx) error {
						_, err := backendtest.ApplyOps(ctx, tx, backendtest.Put(fmt.Sprintf("load/%d/%d", c, i%20), "v"))
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					lats = append(lats, time.Since(begin))
					mu.Unlock()
				}
			})
		}
		during()
		close(stop)
		wg.Wait()
		slices.Sort(lats)
		return lats
	}
	pct := func(l []time.Duration, p int) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[len(l)*p/100]
	}
	base := measure(func() {
		select {
		case <-time.After(300 * time.Millisecond): // a fixed measurement window
		case <-ctx.Done():
		}
	})
	var compactTook time.Duration
	during := measure(func() {
		begin := time.Now()
		if err := be.Compact(ctx, target); err != nil {
			t.Errorf("compact: %v", err)
		}
		compactTook = time.Since(begin)
	})
	t.Logf("compacting %d revisions took %v; write latency p50/p99 before %v/%v (%d writes), during %v/%v (%d writes)",
		target, compactTook, pct(base, 50), pct(base, 99), len(base), pct(during, 50), pct(during, 99), len(during))
	// Each key keeps its newest version at or below target, plus the one
	// that version replaced (the PrevKV of an event at target).
	if n := db.QueryInt(t, url, fmt.Sprintf("SELECT COUNT(*) FROM kv_history WHERE rev <= %d", target)); n > keys+1 {
		t.Errorf("%d history rows at or below the compaction point, want at most %d", n, keys+1)
	}
	if _, err := be.Events(ctx, target-1, target); !errors.Is(err, backend.ErrCompacted) {
		t.Errorf("events below the compaction point: %v", err)
	}
	res, err := backendtest.Range(t, be, backend.RangeOptions{Key: []byte("c/"), End: []byte("c0"), Revision: target})
	if err != nil || len(res.KVs) != keys {
		t.Fatalf("range at the compaction revision: %v, %d keys", err, len(res.KVs))
	}
	for _, kv := range res.KVs {
		if string(kv.Value) != fmt.Sprint(versions-1) || kv.Version != versions {
			t.Errorf("%s at compaction revision: %s", kv.Key, kv.Value)
		}
	}
}

// testLeaseGrantInBatch: functions that retry until they find an unused
// lease ID (as the store's LeaseGrant without an ID does) commit in
// batches with other writes. Such a function loops for as long as its
// transaction says the lease exists; a batch's probe run must not make it
// loop forever (that stopped every write of the instance).
func testLeaseGrantInBatch(t *testing.T, db DB) {
	b := db.open(t, db.NewURL(t))
	ctx, cancel := context.WithTimeout(ctxT(t), time.Minute)
	defer cancel()
	grant := func(tx backend.WriteTx) error {
		for {
			id := rand.Int64N(1<<62) + 1
			_, err := tx.Lease(ctx, id)
			if errors.Is(err, backend.ErrLeaseNotFound) {
				return tx.PutLease(ctx, backend.Lease{ID: id, TTL: 60, Expiry: time.Now().Add(time.Minute)})
			}
			if err != nil {
				return err
			}
		}
	}
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 10 {
				var err error
				if i%2 == 0 {
					err = b.Update(ctx, grant)
				} else {
					key := fmt.Sprintf("grant-batch/%d/%d", i, j)
					err = b.Update(ctx, func(tx backend.WriteTx) error {
						_, err := backendtest.ApplyOps(ctx, tx, backendtest.Put(key, "v"))
						return err
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

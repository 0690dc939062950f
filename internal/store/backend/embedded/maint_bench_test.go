package embedded

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// putMany writes keys[i] = value, one revision per key, in a single
// Update (fast loading without one fsync per key).
func putMany(ctx context.Context, e *Engine, keys [][]byte, value []byte) error {
	return e.Update(ctx, func(tx backend.WriteTx) error {
		for _, k := range keys {
			if err := put(ctx, tx, k, value); err != nil {
				return err
			}
		}
		return nil
	})
}

func compactKey(i int) []byte { return fmt.Appendf(nil, "/registry/pods/ns%03d/pod%06d", i%100, i) }

// BenchmarkCompactLatency measures Update latency while a compaction of
// 100k keys (each with one version to drop) runs, against the same writers
// with no compaction. Each iteration rewrites every key once (untimed), then
// compacts to the head while 16 writers update random keys; the window runs
// from the Compact call until the index walk (and, with reclaim=true, the
// reclamation it triggers) has finished, and lasts at least 50 ms.
// Reports p50/p99/max in µs for both windows.
//
//	go test ./internal/store/backend/embedded -run '^$' -bench CompactLatency -benchtime 5x
func BenchmarkCompactLatency(b *testing.B) {
	for _, noSync := range []bool{true, false} {
		for _, reclaim := range []bool{false, true} {
			b.Run(fmt.Sprintf("nosync=%v/reclaim=%v", noSync, reclaim), func(b *testing.B) {
				benchCompactLatency(b, Options{NoSync: noSync, noReclaim: !reclaim, Logger: quiet})
			})
		}
	}
}

func benchCompactLatency(b *testing.B, opts Options) {
	const keys, writers, chunk = 100_000, 16, 1000
	e, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := b.Context()
	value := []byte(strings.Repeat("v", 256))
	rewrite := func() {
		batch := make([][]byte, 0, chunk)
		for i := range keys {
			batch = append(batch, compactKey(i))
			if len(batch) == chunk {
				if err := putMany(ctx, e, batch, value); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	rewrite()
	// measure runs the writers until stop() returns and returns the
	// latencies of the updates that started before stop returned.
	measure := func(window func()) []time.Duration {
		var (
			mu   sync.Mutex
			lats []time.Duration
			done atomic.Bool
			wg   sync.WaitGroup
			seq  atomic.Int64
		)
		started := make(chan struct{}, writers)
		for range writers {
			wg.Go(func() {
				var mine []time.Duration
				for i := 0; !done.Load(); i++ {
					n := seq.Add(1)
					key := compactKey(int(n*7919) % keys)
					t0 := time.Now()
					if err := e.Update(ctx, func(tx backend.WriteTx) error { return put(ctx, tx, key, value) }); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
					if i == 0 {
						started <- struct{}{}
					}
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			})
		}
		for range writers {
			<-started
		}
		start := time.Now()
		window()
		if d := time.Since(start); d < 50*time.Millisecond {
			timer := time.NewTimer(50*time.Millisecond - d)
			<-timer.C
		}
		done.Store(true)
		wg.Wait()
		return lats
	}
	var idle, during []time.Duration
	var walk time.Duration
	for b.Loop() {
		b.StopTimer()
		rewrite()
		idle = append(idle, measure(func() {})...)
		b.StartTimer()
		during = append(during, measure(func() {
			t0 := time.Now()
			var rev int64
			_ = e.View(ctx, func(tx backend.ReadTx) error { rev = tx.Revision(); return nil })
			if err := e.Compact(ctx, rev); err != nil {
				b.Error(err)
			}
			e.waitMaintenance()
			walk += time.Since(t0)
		})...)
	}
	report := func(name string, l []time.Duration) {
		if len(l) == 0 {
			return
		}
		slices.Sort(l)
		q := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))].Microseconds()) }
		b.ReportMetric(q(0.5), name+"-p50-µs")
		b.ReportMetric(q(0.99), name+"-p99-µs")
		b.ReportMetric(float64(l[len(l)-1].Microseconds()), name+"-max-µs")
	}
	report("idle", idle)
	report("compact", during)
	b.ReportMetric(float64(walk.Microseconds())/float64(b.N), "compact-µs")
}

// TestDiskGrowth writes 1M single-put updates over 1,000 keys (256-byte
// values) from 32 writers, compacting to the head every 100k revisions,
// and reports the log's size on disk and the time a reopen takes. Set
// KEELSON_DISKTEST=1 to run it (it writes ~300 MiB without reclamation).
//
//	KEELSON_DISKTEST=1 go test ./internal/store/backend/embedded -run DiskGrowth -v
func TestDiskGrowth(t *testing.T) {
	if os.Getenv("KEELSON_DISKTEST") == "" {
		t.Skip("set KEELSON_DISKTEST=1 (writes ~300 MiB)")
	}
	for _, seg := range []int64{DefaultSegmentSize, 8 << 20} {
		t.Run(fmt.Sprintf("segment=%dMiB", seg>>20), func(t *testing.T) { diskGrowth(t, seg) })
	}
}

func diskGrowth(t *testing.T, segSize int64) {
	const updates, keys, writers, every = 1_000_000, 1000, 32, 100_000
	dir := t.TempDir()
	e, err := Open(dir, Options{NoSync: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	value := []byte(strings.Repeat("v", 256))
	var seq atomic.Int64
	var compactMu sync.Mutex
	var wg sync.WaitGroup
	var maxSize atomic.Int64
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				n := seq.Add(1)
				if n > updates {
					return
				}
				key := fmt.Appendf(nil, "/registry/configmaps/default/cm%04d", n%keys)
				var rev int64
				err := e.Update(ctx, func(tx backend.WriteTx) error {
					rev = tx.Revision() + 1
					return put(ctx, tx, key, value)
				})
				if err != nil {
					t.Error(err)
					return
				}
				if rev%every == 0 {
					compactMu.Lock()
					if err := e.Compact(ctx, rev); err != nil {
						t.Error(err)
					}
					compactMu.Unlock()
					st, _ := e.Status(ctx)
					for cur := maxSize.Load(); st.DBSize > cur && !maxSize.CompareAndSwap(cur, st.DBSize); cur = maxSize.Load() {
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	e.waitMaintenance()
	st, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats := e.Stats()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	e2, err := Open(dir, Options{NoSync: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	reopen := time.Since(t0)
	st2, _ := e2.Status(ctx)
	e2.Close()
	t.Logf("%d updates of %d keys in %v: log %.1f MiB in %d segments (max seen %.1f MiB), revision %d compacted %d; reopen %v (revision %d)",
		updates, keys, took.Round(time.Millisecond), float64(st.DBSize)/(1<<20), stats.Segments,
		float64(maxSize.Load())/(1<<20), st.Revision, st.CompactRevision, reopen.Round(time.Millisecond), st2.Revision)
}

package embedded

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// countBenchKey is the i-th key of the paged-list benchmarks: one
// resource, 1,000 namespaces.
func countBenchKey(i int) []byte {
	return fmt.Appendf(nil, "/registry/configmaps/ns%03d/cm%07d", i%1000, i)
}

// loadKeys writes n keys with value, 1,000 per revision.
func loadKeys(tb testing.TB, e *Engine, n int, value []byte) {
	tb.Helper()
	ctx := tb.Context()
	for lo := 0; lo < n; lo += 1000 {
		err := e.Update(ctx, func(tx backend.WriteTx) error {
			rev := tx.Revision() + 1
			var evs []backend.Event
			for i := lo; i < min(lo+1000, n); i++ {
				evs = append(evs, backend.Event{Type: backend.EventPut, KV: backend.KeyValue{
					Key: countBenchKey(i), Value: value, ModRevision: rev, CreateRevision: rev, Version: 1}})
			}
			return tx.Apply(ctx, rev, evs)
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// benchKeys is how many keys BenchmarkPagedList loads
// (KEELSON_BENCH_KEYS overrides the default of 1M).
func benchKeys(tb testing.TB) int {
	if s := os.Getenv("KEELSON_BENCH_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			tb.Fatalf("KEELSON_BENCH_KEYS: %v", err)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkPagedList reads, over 1M keys, what kube-apiserver asks for
// when it pages through a resource: 500 keys from a random key to the end
// of the prefix with the exact count of the rest ("page"), and the count
// alone ("count"), both at the current revision, plus a page at a revision
// old enough to fall back to walking the range ("page-old-revision").
// It also reports the heap per key after loading.
func BenchmarkPagedList(b *testing.B) {
	n := benchKeys(b)
	e, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	start := time.Now()
	loadKeys(b, e, n, []byte("0123456789abcdef"))
	b.Logf("loaded %d keys in %v", n, time.Since(start).Round(time.Millisecond))
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapPerKey := float64(ms.HeapAlloc) / float64(n)
	ctx := b.Context()
	oldRev := int64(2)
	rng := rand.New(rand.NewPCG(1, 2))
	run := func(b *testing.B, opts backend.RangeOptions) {
		cpu0 := cpuTime()
		for b.Loop() {
			o := opts
			o.Key = countBenchKey(rng.IntN(n))
			err := e.View(ctx, func(tx backend.ReadTx) error {
				res, err := tx.Range(ctx, o)
				if err == nil && res.Count == 0 {
					err = fmt.Errorf("empty result from %q", o.Key)
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(heapPerKey, "heapB/key")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	}
	end := []byte("/registry/configmaps0")
	b.Run("page", func(b *testing.B) { run(b, backend.RangeOptions{End: end, Limit: 500}) })
	b.Run("count", func(b *testing.B) { run(b, backend.RangeOptions{End: end, CountOnly: true}) })
	// Revision 2 holds the first 1,000 keys only; the range starts below
	// them so that there is something to count.
	b.Run("page-old-revision", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			err := e.View(ctx, func(tx backend.ReadTx) error {
				_, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("/registry/configmaps/"), End: end, Limit: 500, Revision: oldRev})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	})
}

// BenchmarkOpen measures Open (a restart) over a log of 1M keys with
// 512-byte values (KEELSON_BENCH_KEYS overrides the count), replaying the
// whole log ("full-replay", checkpoints off, as before checkpoints
// existed) and from the checkpoint a clean Close leaves ("checkpoint");
// then after n/8 more overwrites and a crash, from the checkpoint plus
// that tail of the log ("checkpoint+tail"; CheckpointBytes is raised so
// that Open does not write a new one) and in full again.
// The log is in the page cache in both cases: a cold start adds the
// reads, which the checkpoint cuts from the whole log to the checkpoint.
func BenchmarkOpen(b *testing.B) {
	n := benchKeys(b)
	dir := b.TempDir()
	e, err := Open(dir, Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 512)
	ctx := b.Context()
	loadKeys(b, e, n, value)
	if err := e.Close(); err != nil { // writes the checkpoint
		b.Fatal(err)
	}
	st, _ := os.Stat(dir + "/" + checkpointName)
	b.Logf("%d keys; checkpoint %d bytes", n, st.Size())
	open := func(b *testing.B, ckpt int64) {
		cpu0 := cpuTime()
		for b.Loop() {
			e, err := Open(dir, Options{NoSync: true, Logger: quiet, CheckpointBytes: ckpt})
			if err != nil {
				b.Fatal(err)
			}
			if e.Stats().Keys != n {
				b.Fatalf("%d keys after open, want %d", e.Stats().Keys, n)
			}
			e.opts.CheckpointBytes = -1 // leave the directory as it was
			e.Close()
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	b.Run("full-replay", func(b *testing.B) { open(b, -1) })
	b.Run("checkpoint", func(b *testing.B) { open(b, 0) })
	// A crash after the checkpoint: n/8 overwrites (about 1/8 of the log)
	// written after it and no checkpoint at close.
	e, err = Open(dir, Options{NoSync: true, Logger: quiet, CheckpointBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	for lo := 0; lo < n/8; lo += 1000 {
		err := e.Update(ctx, func(tx backend.WriteTx) error {
			rev := tx.Revision() + 1
			var evs []backend.Event
			for i := lo; i < min(lo+1000, n/8); i++ {
				evs = append(evs, backend.Event{Type: backend.EventPut, KV: backend.KeyValue{
					Key: countBenchKey(i), Value: value, ModRevision: rev, CreateRevision: rev - 1, Version: 2}})
			}
			return tx.Apply(ctx, rev, evs)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	e.opts.CheckpointBytes = -1 // crash: no checkpoint at close
	e.Close()
	b.Run("checkpoint+tail", func(b *testing.B) { open(b, 1<<40) })
	b.Run("full-replay-after-tail", func(b *testing.B) { open(b, -1) })
}

package embedded

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// put is a minimal single-key put as the store's evaluator would run it.
func put(ctx context.Context, tx backend.WriteTx, key, value []byte) error {
	rev := tx.Revision() + 1
	kv := backend.KeyValue{Key: key, Value: value, ModRevision: rev, CreateRevision: rev, Version: 1}
	res, err := tx.Range(ctx, backend.RangeOptions{Key: key, KeysOnly: true})
	if err != nil {
		return err
	}
	var prev *backend.KeyValue
	if len(res.KVs) == 1 {
		prev = &res.KVs[0]
		kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
	}
	return tx.Apply(ctx, rev, []backend.Event{{Type: backend.EventPut, KV: kv, PrevKV: prev}})
}

// BenchmarkUpdate measures single-put Updates with real fdatasync, from 1
// and from 100 concurrent callers. Run with -benchtime=3s or more; ns/op
// is per Update, puts/s is its inverse.
func BenchmarkUpdate(b *testing.B) {
	for _, clients := range []int{1, 100} {
		for _, size := range []int{256, 4096} {
			b.Run(fmt.Sprintf("clients=%d/value=%d", clients, size), func(b *testing.B) {
				benchUpdate(b, clients, size, Options{})
			})
		}
	}
}

// BenchmarkUpdateInflight compares one sync in flight (no pipelining) with
// the default, at 100 clients.
func BenchmarkUpdateInflight(b *testing.B) {
	for _, size := range []int{256, 4096} {
		for _, inflight := range []int{1, 2, 4} { // 1 = serial commits
			b.Run(fmt.Sprintf("value=%d/inflight=%d", size, inflight), func(b *testing.B) {
				benchUpdate(b, 100, size, Options{inflight: inflight})
			})
		}
	}
}

func benchUpdate(b *testing.B, clients, size int, opts Options) {
	e, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := b.Context()
	value := []byte(strings.Repeat("v", size))
	var seq atomic.Int64
	update := func() {
		n := seq.Add(1)
		key := fmt.Appendf(nil, "/registry/pods/ns%d/pod%d", n%100, n%10000)
		if err := e.Update(ctx, func(tx backend.WriteTx) error { return put(ctx, tx, key, value) }); err != nil {
			b.Error(err)
		}
	}
	before := e.Stats()
	start := time.Now()
	if clients == 1 {
		for b.Loop() {
			update()
		}
	} else {
		work := make(chan struct{})
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for range work {
					update()
				}
			})
		}
		for b.Loop() {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
	}
	elapsed := time.Since(start)
	after := e.Stats()
	commits := after.Commits - before.Commits
	b.ReportMetric(float64(after.Updates-before.Updates)/elapsed.Seconds(), "puts/s")
	if commits > 0 {
		b.ReportMetric(float64(after.Updates-before.Updates)/float64(commits), "puts/commit")
		b.ReportMetric(float64((after.SyncTotal-before.SyncTotal).Microseconds())/float64(commits), "µs/sync")
	}
}

// BenchmarkRange reads single keys and 500-key prefixes concurrently.
func BenchmarkRange(b *testing.B) {
	e, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := b.Context()
	value := []byte(strings.Repeat("v", 1024))
	for i := range 10000 {
		key := fmt.Appendf(nil, "/registry/pods/ns%02d/pod%05d", i%20, i)
		if err := e.Update(ctx, func(tx backend.WriteTx) error { return put(ctx, tx, key, value) }); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("single", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			key := fmt.Appendf(nil, "/registry/pods/ns%02d/pod%05d", i%20, i%10000)
			err := e.View(ctx, func(tx backend.ReadTx) error {
				_, err := tx.Range(ctx, backend.RangeOptions{Key: key})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prefix500", func(b *testing.B) {
		for b.Loop() {
			err := e.View(ctx, func(tx backend.ReadTx) error {
				_, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("/registry/pods/ns07/"), End: []byte("/registry/pods/ns070")})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestMemory100k writes 100k keys × 10 KiB (1 GiB of values) and reports
// the Go heap afterwards. Set KEELSON_MEMTEST=1 to run it.
func TestMemory100k(t *testing.T) {
	if os.Getenv("KEELSON_MEMTEST") == "" {
		t.Skip("set KEELSON_MEMTEST=1 (writes 1 GiB)")
	}
	e, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := t.Context()
	value := make([]byte, 10<<10)
	const keys, workers = 100_000, 32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < keys; i += workers {
				key := fmt.Appendf(nil, "/registry/configmaps/ns%03d/cm%06d", i%1000, i)
				value := append([]byte(nil), value...)
				value[0] = byte(i)
				if err := e.Update(ctx, func(tx backend.WriteTx) error { return put(ctx, tx, key, value) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	st, _ := e.Status(ctx)
	t.Logf("100k keys × 10 KiB: heap in use %.1f MiB, heap sys %.1f MiB, log %.0f MiB, revision %d",
		float64(ms.HeapInuse)/(1<<20), float64(ms.HeapSys)/(1<<20), float64(st.DBSize)/(1<<20), st.Revision)
	// A full list, as kube-apiserver's initial list does.
	start := time.Now()
	err = e.View(ctx, func(tx backend.ReadTx) error {
		res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("/registry/configmaps/"), End: []byte("/registry/configmaps0"), Limit: 500})
		if err == nil && (res.Count != keys || len(res.KVs) != 500) {
			err = fmt.Errorf("count %d, %d kvs", res.Count, len(res.KVs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paged list of 500 of 100k keys: %v", time.Since(start))
	runtime.KeepAlive(e)
}

// BenchmarkUpdateNoSync is BenchmarkUpdate without fdatasync: the engine's
// CPU ceiling.
func BenchmarkUpdateNoSync(b *testing.B) {
	for _, clients := range []int{1, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchUpdate(b, clients, 256, Options{NoSync: true})
		})
	}
}

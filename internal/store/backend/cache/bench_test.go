package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// Benchmark shape: 10,000 keys of 512-byte values; a Range of one key, and
// a 500-key page (Limit 500 with the exact Count of the rest, as
// kube-apiserver's paginated lists ask), each in its own View as the store
// runs them. Modes: off (the engine alone), memory (the default cache),
// and, with a budget too small for values (2 MiB: keys fit, values do
// not), tight (values from the engine) and redis (values from Redis).
const (
	benchKeys  = 10000
	benchValue = 512
	benchPage  = 500
)

func benchKey(i int) []byte { return fmt.Appendf(nil, "/registry/pods/ns/pod-%05d", i) }

func fill(b *testing.B, be backend.Backend) {
	val := make([]byte, benchValue)
	for i := 0; i < benchKeys; i += 500 {
		var ops []backendtest.Op
		for j := i; j < i+500; j++ {
			ops = append(ops, backendtest.Op{Key: benchKey(j), Value: val})
		}
		backendtest.Write(b, be, ops...)
	}
}

func benchEngine(b *testing.B, e engine) {
	store := e.newStore(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	plain, err := e.open(ctx, store)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close() })
	fill(b, plain)
	wrap := func(b *testing.B, opts Options) backend.Backend {
		opts.KeepBackendOpen = true
		if e.meta != nil {
			m, err := e.meta(ctx, store)
			if err != nil {
				b.Fatal(err)
			}
			opts.Meta = m
		}
		c, err := New(ctx, plain, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	modes := []struct {
		name string
		open func(b *testing.B) backend.Backend
	}{
		{"off", func(*testing.B) backend.Backend { return plain }},
		{"memory", func(b *testing.B) backend.Backend { return wrap(b, Options{}) }},
		{"tight", func(b *testing.B) backend.Backend { return wrap(b, Options{MaxBytes: 2 << 20}) }},
		{"redis", func(b *testing.B) backend.Backend { return wrap(b, Options{MaxBytes: 2 << 20, Redis: testRedis(b)}) }},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			be := m.open(b)
			rng := rand.New(rand.NewPCG(1, 2))
			b.Run("single", func(b *testing.B) {
				for b.Loop() {
					res, _, err := view(ctx, be, backend.RangeOptions{Key: benchKey(rng.IntN(benchKeys))})
					if err != nil || len(res.KVs) != 1 {
						b.Fatalf("%v %d", err, len(res.KVs))
					}
				}
			})
			b.Run("page500", func(b *testing.B) {
				end := []byte("/registry/pods/ns0")
				for b.Loop() {
					from := benchKey(rng.IntN(benchKeys/benchPage-1) * benchPage)
					res, _, err := view(ctx, be, backend.RangeOptions{Key: from, End: end, Limit: benchPage})
					if err != nil || len(res.KVs) != benchPage || res.Count < benchPage {
						b.Fatalf("%v %d %d", err, len(res.KVs), res.Count)
					}
				}
			})
			if c, ok := be.(*Cache); ok {
				st := c.Stats()
				b.Logf("%s: hits %d misses %d (behind %d history %d values %d) redis hits %d misses %d, %d KiB",
					m.name, st.Hits, st.Misses(), st.MissBehind, st.MissHistory, st.MissValues, st.RedisHits, st.RedisMisses, st.Bytes>>10)
			}
		})
	}
}

func BenchmarkRangeEmbedded(b *testing.B) { benchEngine(b, embeddedEngine) }
func BenchmarkRangePostgres(b *testing.B) { benchEngine(b, pgEngine) }
func BenchmarkRangeMySQL(b *testing.B)    { benchEngine(b, mysqlEngine) }

package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// view runs one Range in a View of b and returns it with the view's
// revision.
func view(ctx context.Context, b backend.Backend, opts backend.RangeOptions) (backend.RangeResult, int64, error) {
	var res backend.RangeResult
	var rev int64
	err := b.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		var err error
		res, err = tx.Range(ctx, opts)
		return err
	})
	return res, rev, err
}

func sameResult(a, b backend.RangeResult) error {
	if a.Count != b.Count || a.More != b.More || a.Revision != b.Revision || len(a.KVs) != len(b.KVs) {
		return fmt.Errorf("count/more/rev/len %d/%v/%d/%d vs %d/%v/%d/%d", a.Count, a.More, a.Revision, len(a.KVs), b.Count, b.More, b.Revision, len(b.KVs))
	}
	for i := range a.KVs {
		x, y := a.KVs[i], b.KVs[i]
		if string(x.Key) != string(y.Key) || string(x.Value) != string(y.Value) || (x.Value == nil) != (y.Value == nil) && len(x.Value)+len(y.Value) > 0 ||
			x.CreateRevision != y.CreateRevision || x.ModRevision != y.ModRevision || x.Version != y.Version || x.Lease != y.Lease {
			return fmt.Errorf("kv %d: %q=%q c%d m%d v%d l%d vs %q=%q c%d m%d v%d l%d", i,
				x.Key, x.Value, x.CreateRevision, x.ModRevision, x.Version, x.Lease,
				y.Key, y.Value, y.CreateRevision, y.ModRevision, y.Version, y.Lease)
		}
	}
	return nil
}

// differential writes random transactions and compares random reads of
// the cache (current and past revisions, limits, keys/count only) with
// the engine's answer at the same revision.
func differential(t *testing.T, e engine, opts Options, rounds int) {
	ctx := ctxT(t)
	store := e.newStore(t)
	opts.KeepBackendOpen = true
	c := e.mustOpenCached(t, store, opts)
	be := c.Backend()
	t.Cleanup(func() { be.Close() })
	rng := rand.New(rand.NewPCG(1, uint64(len(e.name))))
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	first := backendtest.CurrentRev(t, be)
	for round := range rounds {
		var ops []backendtest.Op
		seen := map[string]bool{}
		for range 1 + rng.IntN(4) {
			k := key()
			if seen[k] {
				continue
			}
			seen[k] = true
			if rng.IntN(4) == 0 {
				ops = append(ops, backendtest.Del(k))
			} else {
				ops = append(ops, backendtest.Op{Key: []byte(k), Value: fmt.Appendf(nil, "v%d-%s", round, string(make([]byte, rng.IntN(300))))})
			}
		}
		rev := backendtest.Write(t, be, ops...)
		if rev == 0 {
			continue
		}
		if err := c.WaitApplied(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if round%25 == 24 {
			cr := first + int64(rng.IntN(int(rev-first)))
			if err := c.Compact(ctx, cr); err != nil && !errors.Is(err, backend.ErrCompacted) {
				t.Fatalf("compact %d: %v", cr, err)
			}
		}
		for range 8 {
			o := backend.RangeOptions{Key: []byte(key())}
			switch rng.IntN(3) {
			case 1:
				o.End = []byte(key())
			case 2:
				o.End = []byte{0}
			}
			if rng.IntN(2) == 0 {
				o.Limit = int64(rng.IntN(6))
			}
			o.KeysOnly = rng.IntN(5) == 0
			o.CountOnly = rng.IntN(8) == 0
			if rng.IntN(2) == 0 {
				o.Revision = first + int64(rng.IntN(int(rev-first+1)))
			}
			got, at, gerr := view(ctx, c, o)
			ow := o
			if ow.Revision == 0 {
				ow.Revision = at
			}
			want, _, werr := view(ctx, be, ow)
			if (gerr == nil) != (werr == nil) || gerr != nil && !errors.Is(gerr, backend.ErrCompacted) != !errors.Is(werr, backend.ErrCompacted) {
				t.Fatalf("round %d %+v: cache err %v, engine err %v", round, o, gerr, werr)
			}
			if gerr != nil {
				continue
			}
			if err := sameResult(got, want); err != nil {
				t.Fatalf("round %d range %q..%q rev %d limit %d keysOnly %v countOnly %v: %v", round, o.Key, o.End, o.Revision, o.Limit, o.KeysOnly, o.CountOnly, err)
			}
		}
	}
	st := c.Stats()
	t.Logf("stats: %+v", st)
	if st.Hits == 0 || !st.Enabled {
		t.Fatalf("cache never served a read: %+v", st)
	}
}

func TestDifferentialEmbedded(t *testing.T) {
	t.Run("roomy", func(t *testing.T) { differential(t, embeddedEngine, Options{}, 300) })
	// 10 KiB: values are evicted and history is trimmed all the time.
	t.Run("tight", func(t *testing.T) { differential(t, embeddedEngine, Options{MaxBytes: 10 << 10}, 300) })
}

func TestDifferentialPostgres(t *testing.T) {
	differential(t, pgEngine, Options{MaxBytes: 10 << 10}, 100)
}

func TestDifferentialMySQL(t *testing.T) {
	differential(t, mysqlEngine, Options{MaxBytes: 10 << 10}, 100)
}

func TestDifferentialRedis(t *testing.T) {
	differential(t, pgEngine, Options{MaxBytes: 10 << 10, Redis: testRedis(t)}, 100)
}

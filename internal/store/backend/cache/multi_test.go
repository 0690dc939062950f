package cache

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// staleness writes through instance A and at once reads through B's (and
// A's) cache: every read must see the write, whatever B's feed has
// delivered so far.
func staleness(t *testing.T, e engine) {
	ctx := ctxT(t)
	store := e.newStore(t)
	a := e.mustOpenCached(t, store, Options{})
	b := e.mustOpenCached(t, store, Options{})
	for i := range 200 {
		key := fmt.Sprintf("k%d", i%7)
		rev := backendtest.Write(t, a, backendtest.Put(key, strconv.Itoa(i)))
		for _, inst := range []struct {
			name string
			c    *Cache
		}{{"B", b}, {"A", a}} {
			res, at, err := view(ctx, inst.c, backend.RangeOptions{Key: []byte(key)})
			if err != nil {
				t.Fatal(err)
			}
			if at < rev || len(res.KVs) != 1 || string(res.KVs[0].Value) != strconv.Itoa(i) || res.KVs[0].ModRevision != rev {
				t.Fatalf("write %d at revision %d, then read through %s at revision %d: %+v (stale)", i, rev, inst.name, at, res.KVs)
			}
		}
	}
	sa, sb := a.Stats(), b.Stats()
	t.Logf("A: hits %d misses %d; B: hits %d misses %d (behind %d)", sa.Hits, sa.Misses(), sb.Hits, sb.Misses(), sb.MissBehind)
	// Once B's feed caught up, B answers from memory.
	if err := b.WaitApplied(ctx, backendtest.CurrentRev(t, a)); err != nil {
		t.Fatal(err)
	}
	before := b.Stats().Hits
	if _, _, err := view(ctx, b, backend.RangeOptions{Key: []byte("k0")}); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Hits != before+1 {
		t.Fatalf("caught-up cache did not serve the read: %+v", b.Stats())
	}
}

func TestStalenessPostgres(t *testing.T) { staleness(t, pgEngine) }
func TestStalenessMySQL(t *testing.T)    { staleness(t, mysqlEngine) }

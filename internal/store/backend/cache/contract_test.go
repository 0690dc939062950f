package cache

import (
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// contract runs the backend contract suite over e wrapped in a cache.
func contract(t *testing.T, e engine, opts func(t testing.TB) Options) {
	stores := map[string]string{}
	backendtest.RunPersistent(t, func(t *testing.T, dir string) backend.Backend {
		s, ok := stores[dir]
		if !ok {
			s = e.newStore(t)
			stores[dir] = s
		}
		o := Options{}
		if opts != nil {
			o = opts(t)
		}
		c, err := e.openCached(t, s, o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

func TestContractEmbedded(t *testing.T) { contract(t, embeddedEngine, nil) }
func TestContractPostgres(t *testing.T) { contract(t, pgEngine, nil) }
func TestContractMySQL(t *testing.T)    { contract(t, mysqlEngine, nil) }

// A budget too small for any value: every value comes from Redis or the
// engine, and history is trimmed to the newest revision.
func TestContractPostgresTinyBudget(t *testing.T) {
	contract(t, pgEngine, func(testing.TB) Options { return Options{MaxBytes: 4096} })
}

func TestContractPostgresRedis(t *testing.T) {
	contract(t, pgEngine, func(t testing.TB) Options { return Options{MaxBytes: 4096, Redis: testRedis(t)} })
}

package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/embedded"
	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/postgres"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// Servers the tests use; KEELSON_TEST_POSTGRES, KEELSON_TEST_MYSQL and
// KEELSON_TEST_REDIS override them.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func redisBase() string { return envOr("KEELSON_TEST_REDIS", "redis://127.0.0.1:6379/0") }

const redisHint = `start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`

func randName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "keelson_cache_" + hex.EncodeToString(b[:])
}

// pgURL and mysqlURL create a fresh schema / database on the shared
// servers (testenv's, which fail the test with how to start a server that
// is down), dropped when the test ends.
func pgURL(t testing.TB) string {
	return testenv.NewDatabase(t, testenv.PostgresURL(), "keelson_cache")
}

func mysqlURL(t testing.TB) string {
	return testenv.NewDatabase(t, testenv.MySQLURL(), "keelson_cache")
}

// engine names an engine under test and opens instances of it.
type engine struct {
	name string
	// newStore returns the identity of fresh storage (a directory or URL).
	newStore func(t testing.TB) string
	// open opens one engine instance on that storage.
	open func(ctx context.Context, store string) (backend.Backend, error)
	// meta returns the read-barrier source for the storage (nil: View).
	meta func(ctx context.Context, store string) (MetaSource, error)
}

var (
	embeddedEngine = engine{
		name:     "embedded",
		newStore: func(t testing.TB) string { return t.TempDir() },
		open: func(_ context.Context, dir string) (backend.Backend, error) {
			return embedded.Open(dir, embedded.Options{NoSync: true})
		},
	}
	pgEngine = engine{
		name:     "postgres",
		newStore: pgURL,
		open: func(ctx context.Context, u string) (backend.Backend, error) {
			return postgres.Open(ctx, u, postgres.Options{})
		},
		meta: NewSQLMeta,
	}
	mysqlEngine = engine{
		name:     "mysql",
		newStore: mysqlURL,
		open: func(ctx context.Context, u string) (backend.Backend, error) {
			return mysql.Open(ctx, u, mysql.Options{})
		},
		meta: NewSQLMeta,
	}
)

// openCached opens an engine instance on store wrapped in a cache.
func (e engine) openCached(t testing.TB, store string, opts Options) (*Cache, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	be, err := e.open(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", e.name, err)
	}
	if e.meta != nil && opts.Meta == nil {
		m, err := e.meta(ctx, store)
		if err != nil {
			be.Close()
			return nil, err
		}
		opts.Meta = m
	}
	c, err := New(ctx, be, opts)
	if err != nil {
		be.Close()
		return nil, err
	}
	return c, nil
}

func (e engine) mustOpenCached(t testing.TB, store string, opts Options) *Cache {
	t.Helper()
	c, err := e.openCached(t, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testRedis connects to the test Redis with a prefix of its own; it
// fails the test (never skips) when Redis is down.
func testRedis(t testing.TB) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := redisBase()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	r, err := OpenRedis(ctx, u+sep+"prefix="+randName()+":", "unused:", nil)
	if err != nil {
		t.Fatalf("redis is not reachable (%v); %s", err, redisHint)
	}
	return r
}

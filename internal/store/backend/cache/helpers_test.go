package cache

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/embedded"
	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/postgres"
)

// Servers the tests use; KEELSON_TEST_POSTGRES, KEELSON_TEST_MYSQL and
// KEELSON_TEST_REDIS override them.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func pgBase() string {
	return envOr("KEELSON_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
}
func mysqlBase() string { return envOr("KEELSON_TEST_MYSQL", "mysql://root@tcp(127.0.0.1:3306)/test") }
func redisBase() string { return envOr("KEELSON_TEST_REDIS", "redis://127.0.0.1:6379/0") }

const (
	pgHint    = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
	mysqlHint = "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
	redisHint = `start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`
)

func randName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "keelson_cache_" + hex.EncodeToString(b[:])
}

func pgExec(t testing.TB, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgBase())
	if err != nil {
		t.Fatalf("postgresql is not reachable (%v); %s", err, pgHint)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// pgURL creates a fresh schema, dropped when the test ends.
func pgURL(t testing.TB) string {
	t.Helper()
	schema := randName()
	pgExec(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgExec(t, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(pgBase())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func mysqlExec(t testing.TB, stmt string) {
	t.Helper()
	cfg, err := mysql.ParseURL(mysqlBase())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("mysql is not reachable (%v); %s", err, mysqlHint)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// mysqlURL creates a fresh database, dropped when the test ends.
func mysqlURL(t testing.TB) string {
	t.Helper()
	name := randName()
	mysqlExec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { mysqlExec(t, "DROP DATABASE "+name) })
	base := mysqlBase()
	i := strings.LastIndex(base, "/")
	_, q, _ := strings.Cut(base[i+1:], "?")
	u := base[:i+1] + name
	if q != "" {
		u += "?" + q
	}
	return u
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

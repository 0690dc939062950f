// Package dbtest gives store tests a fresh database per test on the
// machine's PostgreSQL and MariaDB/MySQL, and starts in-process keelson
// store servers on it.
//
// A database that is down fails the test with a hint on how to start it;
// it is never skipped. KEELSON_TEST_POSTGRES and KEELSON_TEST_MYSQL
// override the servers (defaults: postgres://postgres@127.0.0.1:5432/test
// and mysql://root@tcp(127.0.0.1:3306)/test). URLs may hold credentials:
// this package never logs them or puts them in failure messages.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelson-dev/keelson/internal/store"
	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
)

// Engine is a storage engine tests can put a store on.
type Engine struct {
	// Name is "embedded", "postgres" or "mysql".
	Name string
	// NewBackend prepares an empty database for one test (dropped when
	// the test ends) and returns the store's Backend setting for it; ""
	// selects the embedded engine (then each server needs its own DataDir).
	NewBackend func(t testing.TB) string
}

// Engines are the store's engines, embedded first.
var Engines = []Engine{
	{Name: "embedded", NewBackend: func(testing.TB) string { return "" }},
	{Name: "postgres", NewBackend: NewPostgres},
	{Name: "mysql", NewBackend: NewMySQL},
}

// timeout bounds one administrative statement.
const timeout = 30 * time.Second

// ---- PostgreSQL

// PostgresBase is the PostgreSQL server tests use.
func PostgresBase() string {
	if u := os.Getenv("KEELSON_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

const pgHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

var pgAdmin struct {
	sync.Mutex
	pool *pgxpool.Pool
}

func redactedPG() string {
	u, err := url.Parse(PostgresBase())
	if err != nil {
		return "(unparsable KEELSON_TEST_POSTGRES)"
	}
	return u.Redacted()
}

// pgExec runs stmt on the base PostgreSQL database through a small pool
// shared by the test binary.
func pgExec(t testing.TB, stmt string) {
	t.Helper()
	pgAdmin.Lock()
	if pgAdmin.pool == nil {
		cfg, err := pgxpool.ParseConfig(PostgresBase())
		if err != nil {
			pgAdmin.Unlock()
			t.Fatalf("KEELSON_TEST_POSTGRES is not a postgres URL")
		}
		cfg.MaxConns = 4
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			pgAdmin.Unlock()
			t.Fatalf("postgresql at %s: %v; %s", redactedPG(), err, pgHint)
		}
		pgAdmin.pool = pool
	}
	pool := pgAdmin.pool
	pgAdmin.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := pool.Exec(ctx, stmt); err != nil {
		t.Fatalf("postgresql at %s: %s: %v; is it running? %s", redactedPG(), stmt, err, pgHint)
	}
}

// NewPostgres creates an empty schema, dropped when t ends, and returns a
// URL whose search_path selects it (application_name names it too, so
// KillConns finds its connections).
func NewPostgres(t testing.TB) string {
	t.Helper()
	schema := "keelson_test_" + randHex()
	pgExec(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgExec(t, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(PostgresBase())
	if err != nil {
		t.Fatal("KEELSON_TEST_POSTGRES is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// ---- MySQL / MariaDB

// MySQLBase is the MySQL or MariaDB server tests use.
func MySQLBase() string {
	if u := os.Getenv("KEELSON_TEST_MYSQL"); u != "" {
		return u
	}
	return "mysql://root@tcp(127.0.0.1:3306)/test"
}

const myHint = "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

var myAdmin struct {
	sync.Mutex
	db   *sql.DB
	addr string
}

func myExec(t testing.TB, stmt string) {
	t.Helper()
	myAdmin.Lock()
	if myAdmin.db == nil {
		cfg, err := mysql.ParseURL(MySQLBase())
		if err != nil {
			myAdmin.Unlock()
			t.Fatalf("KEELSON_TEST_MYSQL: %v", err)
		}
		conn, err := gomysql.NewConnector(cfg)
		if err != nil {
			myAdmin.Unlock()
			t.Fatalf("KEELSON_TEST_MYSQL: %v", err)
		}
		myAdmin.db = sql.OpenDB(conn)
		myAdmin.db.SetMaxOpenConns(4)
		myAdmin.addr = cfg.Addr
	}
	db, addr := myAdmin.db, myAdmin.addr
	myAdmin.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("mysql at %s: %s: %v; is it running? %s", addr, stmt, err, myHint)
	}
}

// NewMySQL creates an empty database, dropped when t ends, and returns a
// URL that selects it.
func NewMySQL(t testing.TB) string {
	t.Helper()
	name := "keelson_test_" + randHex()
	myExec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() { myExec(t, "DROP DATABASE "+name) })
	base := MySQLBase()
	i := strings.LastIndex(base, "/")
	_, q, _ := strings.Cut(base[i+1:], "?")
	u := base[:i+1] + name
	if q != "" {
		u += "?" + q
	}
	return u
}

// KillConnections makes the database server drop every connection to the
// database (PostgreSQL: the schema) that backendURL, made by NewPostgres or
// NewMySQL, selects, and no other test's.
func KillConnections(t testing.TB, backendURL string) {
	t.Helper()
	switch {
	case strings.HasPrefix(backendURL, "postgres"):
		u, err := url.Parse(backendURL)
		if err != nil {
			t.Fatal("not a postgres URL")
		}
		app := u.Query().Get("application_name")
		if app == "" {
			t.Fatal("KillConnections: URL not made by NewPostgres")
		}
		pgExec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+app+"'")
	case strings.HasPrefix(backendURL, "mysql"):
		cfg, err := mysql.ParseURL(backendURL)
		if err != nil {
			t.Fatal(err)
		}
		myAdmin.Lock()
		db, addr := myAdmin.db, myAdmin.addr
		myAdmin.Unlock()
		if db == nil {
			t.Fatal("KillConnections: URL not made by NewMySQL")
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rows, err := db.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = ?", cfg.DBName)
		if err != nil {
			t.Fatalf("mysql at %s: listing connections: %v; %s", addr, err, myHint)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			_, _ = db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)) // it may be gone already
		}
	default:
		t.Fatalf("KillConnections: not a database URL")
	}
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---- servers

// StartStore starts an in-process keelson store on 127.0.0.1:0 with the
// given Backend setting (for the embedded engine, in a fresh temp dir),
// logging errors only, and closes it when t ends. configure, if not nil,
// adjusts the configuration first. It returns once the server accepts
// connections.
func StartStore(t testing.TB, backendURL string, configure func(*store.Config)) *store.Server {
	t.Helper()
	s, err := NewStore(t, backendURL, configure)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing keelson store: %v", err)
		}
	})
	return s
}

// NewStore is StartStore without the cleanup: the caller closes the
// server (tests that stop and replace servers).
func NewStore(t testing.TB, backendURL string, configure func(*store.Config)) (*store.Server, error) {
	t.Helper()
	cfg := store.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = ""
	cfg.Backend = backendURL
	if backendURL == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if configure != nil {
		configure(&cfg)
	}
	s, err := store.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("keelson store: %w", err)
	}
	if err := s.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("starting keelson store: %w", err)
	}
	return s, nil
}

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon/sqltest"
)

// baseURL is the server tests use; KEELSON_TEST_POSTGRES overrides it.
func baseURL() string {
	if u := os.Getenv("KEELSON_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

const startHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

func adminExec(t testing.TB, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("postgresql at %s is not reachable (%v); %s", redactedBase(), err, startHint)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func redactedBase() string {
	u, err := url.Parse(baseURL())
	if err != nil {
		return "(unparsable KEELSON_TEST_POSTGRES)"
	}
	return u.Redacted()
}

// newURL creates a fresh schema, dropped when the test ends, and returns
// a URL whose search_path selects it.
func newURL(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "keelson_test_" + hex.EncodeToString(b[:])
	adminExec(t, baseURL(), "CREATE SCHEMA "+schema)
	t.Cleanup(func() { adminExec(t, baseURL(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(baseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openURL(ctx context.Context, u string) (backend.Backend, error) { return Open(ctx, u, Options{}) }

// killConns terminates the server processes of the test's connections
// (found by the application_name newURL set to the schema's name).
func killConns(t testing.TB, u string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	app := pu.Query().Get("application_name")
	adminExec(t, baseURL(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+app+"'")
}

func queryInt(t testing.TB, u, sql string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("postgresql at %s is not reachable (%v); %s", redactedBase(), err, startHint)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

var db = sqltest.DB{
	QueryInt:  queryInt,
	NewURL:    newURL,
	Open:      openURL,
	Exec:      adminExec,
	KillConns: killConns,
}

func TestContract(t *testing.T) { backendtest.RunPersistent(t, sqltest.PersistentOpener(db)) }

func TestSQL(t *testing.T) { sqltest.Run(t, db) }

func TestSQLNoWriteCache(t *testing.T) {
	nc := db
	nc.Open = func(ctx context.Context, u string) (backend.Backend, error) {
		return Open(ctx, u, Options{NoWriteCache: true})
	}
	sqltest.Run(t, nc)
}

func BenchmarkUpdate1(b *testing.B)   { sqltest.BenchmarkUpdate(b, db, 1) }
func BenchmarkUpdate100(b *testing.B) { sqltest.BenchmarkUpdate(b, db, 100) }

// A search_path naming no existing schema is refused with a message that
// says so (it used to surface as a NULL scan error).
func TestOpenMissingSchema(t *testing.T) {
	u, err := url.Parse(baseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "keelson_no_such_schema")
	u.RawQuery = q.Encode()
	adminExec(t, baseURL(), "SELECT 1") // the server is up: fail with a start hint otherwise
	b, err := Open(t.Context(), u.String(), Options{})
	if err == nil {
		b.Close()
		t.Fatal("opened a store on a search_path with no existing schema")
	}
	for _, want := range []string{"keelson_no_such_schema", "CREATE SCHEMA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

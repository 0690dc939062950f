package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon/sqltest"
)

// baseURL is the server tests use; KEELSON_TEST_MYSQL overrides it.
func baseURL() string {
	if u := os.Getenv("KEELSON_TEST_MYSQL"); u != "" {
		return u
	}
	return "mysql://root@tcp(127.0.0.1:3306)/test"
}

const startHint = "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

// adminExec runs sql on the database u names.
func adminExec(t testing.TB, u, stmt string) {
	t.Helper()
	cfg, err := ParseURL(u)
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
		t.Fatalf("mysql at %s is not reachable (%v); %s", cfg.Addr, err, startHint)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// newURL creates a fresh database, dropped when the test ends.
func newURL(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "keelson_test_" + hex.EncodeToString(b[:])
	adminExec(t, baseURL(), "CREATE DATABASE "+name)
	t.Cleanup(func() { adminExec(t, baseURL(), "DROP DATABASE "+name) })
	base := baseURL()
	i := strings.LastIndex(base, "/")
	rest := base[i+1:]
	_, q, _ := strings.Cut(rest, "?")
	u := base[:i+1] + name
	if q != "" {
		u += "?" + q
	}
	return u
}

func openURL(ctx context.Context, u string) (backend.Backend, error) { return Open(ctx, u, Options{}) }

// killConns kills every server thread connected to the test's database.
func killConns(t testing.TB, u string) {
	t.Helper()
	cfg, err := ParseURL(u)
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
	rows, err := db.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", cfg.DBName)
	if err != nil {
		t.Fatalf("mysql at %s is not reachable (%v); %s", cfg.Addr, err, startHint)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		_, _ = db.ExecContext(ctx, fmt.Sprintf("KILL %d", id)) // it may have gone already
	}
}

func queryInt(t testing.TB, u, stmt string) int64 {
	t.Helper()
	cfg, err := ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(t.Context(), stmt).Scan(&n); err != nil {
		t.Fatalf("%s: %v (is mysql running? %s)", stmt, err, startHint)
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

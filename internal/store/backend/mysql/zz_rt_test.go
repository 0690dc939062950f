package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

func TestZZRoundTrip(t *testing.T) {
	u := newURL(t)
	b, err := Open(t.Context(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	cfg, _ := ParseURL(u)
	conn, _ := gomysql.NewConnector(cfg)
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx := context.Background()
	c, _ := db.Conn(ctx)
	val := strings.Repeat("x", 256)
	measure := func(name string, f func(i int)) {
		const n = 2000
		start := time.Now()
		for i := range n {
			f(i)
		}
		t.Logf("%s: %v per op", name, time.Since(start)/n)
	}
	measure("select 1", func(int) {
		var x int
		if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&x); err != nil {
			t.Fatal(err)
		}
	})
	measure("select key", func(i int) {
		rows, err := c.QueryContext(ctx, "SELECT k, create_rev, mod_rev, version, lease, value FROM kv_current WHERE k = ?", []byte(fmt.Sprint("k", i)))
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	})
	c.ExecContext(ctx, "START TRANSACTION")
	measure("insert2+select in txn", func(i int) {
		k := []byte(fmt.Sprint("k", i))
		rows, err := c.QueryContext(ctx, "INSERT INTO kv_history (rev, sub, k, del, create_rev, version, lease, value, prev_rev) VALUES (?,?,?,?,?,?,?,?,?);INSERT INTO kv_current (k, create_rev, mod_rev, version, lease, value) VALUES (?,?,?,?,?,?) ON DUPLICATE KEY UPDATE value = VALUES(value); SELECT k FROM kv_current WHERE k = ?",
			i+1, 0, k, 0, i+1, 1, 0, []byte(val), 0, k, i+1, i+1, 1, 0, []byte(val), k)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	})
	c.ExecContext(ctx, "COMMIT")
	pc, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	measure("pg select 1", func(int) {
		var x int
		if err := pc.QueryRow(ctx, "SELECT 1").Scan(&x); err != nil {
			t.Fatal(err)
		}
	})
}

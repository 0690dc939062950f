package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPrivateDBServer starts each private server, creates a database with
// a row, restarts the server (clean) and kills it (crash), and checks the
// row survives both.
func TestPrivateDBServer(t *testing.T) {
	for _, tc := range []struct {
		kind  DBKind
		start func(testing.TB) *DBServer
	}{
		{DBPostgres, StartPrivatePostgres},
		{DBMariaDB, StartPrivateMariaDB},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			s := tc.start(t)
			if s.Port == 5432 || s.Port == 3306 {
				t.Fatalf("private server on the shared port %d", s.Port)
			}
			u := NewDatabase(t, s.URL, "keelson_testenv")
			exec := pgExec
			if tc.kind == DBMariaDB {
				exec = mysqlExec
			}
			ctx := t.Context()
			if err := exec(ctx, u, "CREATE TABLE t (v INT)"); err != nil {
				t.Fatal(err)
			}
			if err := exec(ctx, u, "INSERT INTO t VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			if err := s.Restart(ctx); err != nil {
				t.Fatalf("restart: %v", err)
			}
			s.Kill()
			if s.Running() {
				t.Fatal("running after Kill")
			}
			if err := s.Start(ctx); err != nil {
				t.Fatalf("start after kill: %v", err)
			}
			if n := countRows(t, tc.kind, u); n != 1 {
				t.Fatalf("%d rows after the restarts, want 1", n)
			}
		})
	}
}

// countRows returns SELECT COUNT(*) FROM t.
func countRows(t *testing.T, kind DBKind, u string) int {
	t.Helper()
	var n int
	if kind == DBPostgres {
		c, err := pgx.Connect(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if err := c.QueryRow(t.Context(), "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	db, err := mysqlDB(u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateDatabaseURL(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"mysql://root@tcp(127.0.0.1:3306)/test", "mysql://root@tcp(127.0.0.1:3306)/x"},
		{"mysql://root@tcp(127.0.0.1:3306)/test?timeout=5s", "mysql://root@tcp(127.0.0.1:3306)/x?timeout=5s"},
		{"mysql://u@unix(/run/mysqld/mysqld.sock)/test", "mysql://u@unix(/run/mysqld/mysqld.sock)/x"},
		{"mysql://root@127.0.0.1:3306/test", "mysql://root@127.0.0.1:3306/x"},
	} {
		if got := withMySQLDatabase(tc.base, "x"); got != tc.want {
			t.Errorf("withMySQLDatabase(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
	_, _, err := CreateDatabase(context.Background(), "redis://u:s3cret@h/0", "keelson_x")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("CreateDatabase(redis) = %v, want an error without the password", err)
	}
	if _, _, err := CreateDatabase(context.Background(), DefaultPostgresURL, "Bad-Prefix"); err == nil {
		t.Error("CreateDatabase accepted a bad prefix")
	}
}

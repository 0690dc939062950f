package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

// Shared database servers that tests use unless the environment names
// others.
const (
	// DefaultPostgresURL is the PostgreSQL server tests share.
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test"
	// DefaultMySQLURL is the MySQL/MariaDB server tests share.
	DefaultMySQLURL = "mysql://root@tcp(127.0.0.1:3306)/test"
	// EnvPostgresURL overrides DefaultPostgresURL.
	EnvPostgresURL = "KEELSON_TEST_POSTGRES"
	// EnvMySQLURL overrides DefaultMySQLURL.
	EnvMySQLURL = "KEELSON_TEST_MYSQL"

	// PostgresStartHint and MySQLStartHint say how to start the machine's
	// shared servers; errors about an unreachable server end with them.
	PostgresStartHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
	MySQLStartHint    = "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
)

// PostgresURL returns the shared PostgreSQL server's URL: $KEELSON_TEST_POSTGRES,
// else DefaultPostgresURL.
func PostgresURL() string {
	if u := os.Getenv(EnvPostgresURL); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// MySQLURL returns the shared MySQL/MariaDB server's URL: $KEELSON_TEST_MYSQL,
// else DefaultMySQLURL.
func MySQLURL() string {
	if u := os.Getenv(EnvMySQLURL); u != "" {
		return u
	}
	return DefaultMySQLURL
}

// adminTimeout bounds one administrative statement (create, drop).
const adminTimeout = 30 * time.Second

// validPrefix is what a database name prefix may hold: the name is used
// unquoted in SQL.
var validPrefix = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// CreateDatabase creates an empty, uniquely named database on the server
// that base (postgres://… or mysql://…) points at and returns a URL for
// keelson store's --backend, and a function that drops it. On PostgreSQL it
// is a schema PREFIX_<random> of base's database, selected by the
// search_path parameter (application_name is set to the same name); on
// MySQL/MariaDB a database PREFIX_<random>. Errors never contain a
// password.
func CreateDatabase(ctx context.Context, base, prefix string) (dbURL string, drop func(context.Context) error, err error) {
	if !validPrefix.MatchString(prefix) {
		return "", nil, fmt.Errorf("database name prefix %q: want lower-case letters, digits and _", prefix)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + "_" + hex.EncodeToString(b[:])
	switch {
	case strings.HasPrefix(base, "postgres://"), strings.HasPrefix(base, "postgresql://"):
		u, err := url.Parse(base)
		if err != nil {
			return "", nil, fmt.Errorf("parsing postgresql url %s: not a url", sqlcommon.RedactURL(base))
		}
		if err := pgExec(ctx, base, "CREATE SCHEMA "+name); err != nil {
			return "", nil, err
		}
		q := u.Query()
		q.Set("search_path", name)
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String(), func(ctx context.Context) error {
			return pgExec(ctx, base, "DROP SCHEMA "+name+" CASCADE")
		}, nil
	case strings.HasPrefix(base, "mysql://"):
		if err := mysqlExec(ctx, base, "CREATE DATABASE "+name); err != nil {
			return "", nil, err
		}
		return withMySQLDatabase(base, name), func(ctx context.Context) error {
			return mysqlExec(ctx, base, "DROP DATABASE "+name)
		}, nil
	}
	return "", nil, fmt.Errorf("database url %s: want postgres:// or mysql://", sqlcommon.RedactURL(base))
}

// NewDatabase is CreateDatabase for tests: it fails the test on error and
// drops the database with t.Cleanup (after everything registered later,
// such as an environment using it, has stopped).
func NewDatabase(t testing.TB, base, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), adminTimeout)
	defer cancel()
	u, drop, err := CreateDatabase(ctx, base, prefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := drop(ctx); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return u
}

// withMySQLDatabase replaces the database name of a mysql:// URL (DSN or
// URL form), keeping its parameters.
func withMySQLDatabase(base, name string) string {
	head, query, hasQuery := strings.Cut(base, "?")
	i := strings.LastIndex(head, "/")
	out := head[:i+1] + name
	if hasQuery {
		out += "?" + query
	}
	return out
}

// pgExec runs one statement on the PostgreSQL database u names.
func pgExec(ctx context.Context, u, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("connecting to postgresql at %s: %w; %s", sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)), PostgresStartHint)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// mysqlDB opens a connection pool to the MySQL database u names.
func mysqlDB(u string) (*sql.DB, error) {
	cfg, err := mysql.ParseURL(u)
	if err != nil {
		return nil, err
	}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql url %s: %w", sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)))
	}
	return sql.OpenDB(conn), nil
}

// mysqlExec runs one statement on the MySQL database u names.
func mysqlExec(ctx context.Context, u, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	db, err := mysqlDB(u)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("connecting to mysql at %s: %w; %s", sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)), MySQLStartHint)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s on mysql at %s: %w", stmt, sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)))
	}
	return nil
}

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// freshDB creates an empty database for one target and returns the URL
// the server is given (the form depends on kind), a description of the
// database's durability settings, and a function that drops it. Errors
// never carry the URL (it may hold a password).
func (b *bencher) freshDB(ctx context.Context, spec targetSpec) (serverURL, durability string, drop func(), err error) {
	name := fmt.Sprintf("kbench_%s_%d", strings.ReplaceAll(spec.Name, "-", "_"), time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch spec.DB {
	case "postgres":
		admin, err := pgx.Connect(ctx, b.cfg.PostgresURL)
		if err != nil {
			return "", "", nil, fmt.Errorf("connecting to postgresql: %w", redact(err))
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", "", nil, fmt.Errorf("creating database %s: %w", name, redact(err))
		}
		var sc, fs, ver string
		_ = admin.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc)
		_ = admin.QueryRow(ctx, "SHOW fsync").Scan(&fs)
		_ = admin.QueryRow(ctx, "SHOW server_version").Scan(&ver)
		u, err := url.Parse(b.cfg.PostgresURL)
		if err != nil {
			return "", "", nil, fmt.Errorf("parsing --postgres: %w", redact(err))
		}
		u.Path = "/" + name
		drop = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, b.cfg.PostgresURL)
			if err != nil {
				return
			}
			defer c.Close(ctx)
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		return u.String(), fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s", ver, fs, sc), drop, nil
	case "mysql":
		admin, err := sql.Open("mysql", b.cfg.MySQLDSN)
		if err != nil {
			return "", "", nil, fmt.Errorf("opening mysql: %w", redact(err))
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return "", "", nil, fmt.Errorf("creating database %s: %w", name, redact(err))
		}
		var flush, binlog, ver string
		_ = admin.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@version").Scan(&flush, &binlog, &ver)
		cfg, err := mysql.ParseDSN(b.cfg.MySQLDSN)
		if err != nil {
			return "", "", nil, fmt.Errorf("parsing --mysql: %w", redact(err))
		}
		cfg.DBName = name
		drop = func() {
			db, err := sql.Open("mysql", b.cfg.MySQLDSN)
			if err != nil {
				return
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		}
		return "mysql://" + cfg.FormatDSN(), fmt.Sprintf("MariaDB/MySQL %s, innodb_flush_log_at_trx_commit=%s, sync_binlog=%s", ver, flush, binlog), drop, nil
	}
	return "", "", nil, fmt.Errorf("target %s has no database", spec.Name)
}

// redact replaces credentials ("scheme://user:pass@") in an error's text.
func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var out strings.Builder
	for {
		i := strings.Index(msg, "://")
		if i < 0 {
			break
		}
		rest := msg[i+3:]
		j := strings.IndexAny(rest, "@ /")
		out.WriteString(msg[:i+3])
		if j >= 0 && rest[j] == '@' {
			out.WriteString("[redacted]")
			rest = rest[j:]
		}
		msg = rest
	}
	out.WriteString(msg)
	return errors.New(out.String())
}

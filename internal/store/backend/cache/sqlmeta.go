package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/postgres"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

// metaSQL reads the SQL engines' meta row. A single autocommit SELECT
// (READ COMMITTED on PostgreSQL, a fresh consistent read on InnoDB) sees
// every transaction that committed before it started, on any instance.
const metaSQL = "SELECT rev, compact_rev FROM meta WHERE id = 1"

// metaConns is the pool size of a SQL meta source.
const metaConns = 4

// NewSQLMeta opens a small connection pool to the database of a
// postgres:// or mysql:// backend URL and returns a MetaSource reading
// its meta row: one round trip per (coalesced) read barrier. Errors never
// contain credentials.
func NewSQLMeta(ctx context.Context, url string) (MetaSource, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		cfg, err := postgres.ParseURL(url)
		if err != nil {
			return nil, err
		}
		cfg.MaxConns = metaConns
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("opening postgres %s for the read cache: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets(url, cfg.ConnConfig.Password)))
		}
		return &pgMeta{pool: pool}, nil
	case strings.HasPrefix(url, "mysql://"):
		cfg, err := mysql.ParseURL(url)
		if err != nil {
			return nil, err
		}
		conn, err := gomysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("opening mysql %s for the read cache: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets(url, cfg.Passwd)))
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(metaConns)
		db.SetMaxIdleConns(metaConns)
		return &mysqlMeta{db: db, secrets: secrets(url, cfg.Passwd)}, nil
	}
	return nil, errors.New("read cache meta source: not a postgres:// or mysql:// url")
}

func secrets(url, password string) []string {
	s := sqlcommon.Secrets(url)
	if password != "" {
		s = append(s, password)
	}
	return s
}

type pgMeta struct{ pool *pgxpool.Pool }

func (m *pgMeta) Meta(ctx context.Context) (rev, compact int64, err error) {
	if err := m.pool.QueryRow(ctx, metaSQL).Scan(&rev, &compact); err != nil {
		return 0, 0, fmt.Errorf("reading revision: %w", err)
	}
	return rev, compact, nil
}

func (m *pgMeta) Close() error { m.pool.Close(); return nil }

type mysqlMeta struct {
	db      *sql.DB
	secrets []string
}

func (m *mysqlMeta) Meta(ctx context.Context) (rev, compact int64, err error) {
	if err := m.db.QueryRowContext(ctx, metaSQL).Scan(&rev, &compact); err != nil {
		return 0, 0, fmt.Errorf("reading revision: %w", sqlcommon.Scrub(err, m.secrets))
	}
	return rev, compact, nil
}

func (m *mysqlMeta) Close() error { return m.db.Close() }

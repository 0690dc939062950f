package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

// MaxKeySize is the longest key this engine stores (btree index entries
// must fit in a third of an 8 KiB page).
const MaxKeySize = 2600

// Options tune the engine.
type Options struct {
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBatch caps the Update functions per transaction (0: default).
	MaxBatch int
	// NoWriteCache disables the write path's cache of current versions.
	NoWriteCache bool
}

// defaultMaxConns is the pool size when the URL sets no pool_max_conns.
const defaultMaxConns = 16

// ParseURL checks a postgres:// URL and returns pgx's pool configuration.
// Errors never contain the password.
func ParseURL(u string) (*pgxpool.Config, error) {
	scheme, _, ok := strings.Cut(u, "://")
	if !ok || (scheme != "postgres" && scheme != "postgresql") {
		return nil, fmt.Errorf("postgres url %s: scheme must be postgres:// or postgresql://", sqlcommon.RedactURL(u))
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("postgres url %s: %w", sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)))
	}
	if !strings.Contains(u, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	return cfg, nil
}

// Open connects to the database at url, creates or migrates the schema,
// and returns the engine.
func Open(ctx context.Context, url string, opts Options) (backend.Backend, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	secrets := sqlcommon.Secrets(url)
	if cfg.ConnConfig.Password != "" {
		secrets = append(secrets, cfg.ConnConfig.Password)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening postgres %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	d := &dialect{pool: pool, cfg: cfg, secrets: secrets, log: log}
	var schema *string
	var searchPath string
	if err := pool.QueryRow(ctx, "SELECT current_schema(), current_setting('search_path')").Scan(&schema, &searchPath); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to postgres %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	if schema == nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: no schema of search_path %q exists; create it first (CREATE SCHEMA name) or leave search_path out of the url",
			sqlcommon.RedactURL(url), searchPath)
	}
	d.channel = "keelson_" + *schema
	if len(d.channel) > 63 {
		d.channel = d.channel[:63]
	}
	e, err := sqlcommon.New(ctx, d, sqlcommon.Options{Logger: log, MaxBatch: opts.MaxBatch, NoWriteCache: opts.NoWriteCache, Overlap: true, LocalFeed: true})
	if err != nil {
		return nil, fmt.Errorf("opening postgres %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	return e, nil
}

type dialect struct {
	pool    *pgxpool.Pool
	cfg     *pgxpool.Config
	secrets []string
	log     *slog.Logger
	channel string
}

func (d *dialect) Name() string    { return "postgres" }
func (d *dialect) MaxKeySize() int { return MaxKeySize }
func (d *dialect) Close()          { d.pool.Close() }

func (d *dialect) Acquire(ctx context.Context) (sqlcommon.Conn, error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, sqlcommon.Scrub(err, d.secrets)
	}
	return &conn{c: c, pool: d.pool}, nil
}

func (d *dialect) BeginWrite() []sqlcommon.Stmt {
	return []sqlcommon.Stmt{{SQL: "BEGIN ISOLATION LEVEL READ COMMITTED"}}
}

func (d *dialect) BeginRead() []sqlcommon.Stmt {
	return []sqlcommon.Stmt{{SQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}}
}

func (d *dialect) LockSchema() sqlcommon.Stmt {
	return sqlcommon.Stmt{SQL: "SELECT pg_advisory_lock(?)", Args: []any{schemaLockID}}
}

func (d *dialect) UnlockSchema() sqlcommon.Stmt {
	return sqlcommon.Stmt{SQL: "SELECT pg_advisory_unlock(?)", Args: []any{schemaLockID}}
}

// schemaLockID is the advisory lock serialising migrations ("keelson").
const schemaLockID int64 = 0x6b65656c736f6e

func (d *dialect) Migrations() [][]string {
	return [][]string{{
		`CREATE TABLE IF NOT EXISTS meta (id INT PRIMARY KEY, rev BIGINT NOT NULL, compact_rev BIGINT NOT NULL)`,
		`INSERT INTO meta (id, rev, compact_rev) VALUES (1, 1, 0) ON CONFLICT (id) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS kv_current (k BYTEA PRIMARY KEY, create_rev BIGINT NOT NULL,
			mod_rev BIGINT NOT NULL, version BIGINT NOT NULL, lease BIGINT NOT NULL, value BYTEA NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS kv_current_lease ON kv_current (lease, k) WHERE lease <> 0`,
		`CREATE TABLE IF NOT EXISTS kv_history (rev BIGINT NOT NULL, sub INT NOT NULL, k BYTEA NOT NULL,
			del SMALLINT NOT NULL, create_rev BIGINT NOT NULL, version BIGINT NOT NULL, lease BIGINT NOT NULL,
			value BYTEA NOT NULL, prev_rev BIGINT NOT NULL, PRIMARY KEY (rev, sub))`,
		`CREATE UNIQUE INDEX IF NOT EXISTS kv_history_k_rev ON kv_history (k, rev)`,
		`CREATE TABLE IF NOT EXISTS leases (id BIGINT PRIMARY KEY, ttl BIGINT NOT NULL, expiry_ns BIGINT NOT NULL)`,
	}}
}

func (d *dialect) Apply(hist []sqlcommon.HistoryRow, dels [][]byte, puts, news []backend.KeyValue) []sqlcommon.Stmt {
	n := len(hist)
	revs, subs, creates, versions, leases, prevs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	del := make([]int16, n)
	for i, h := range hist {
		revs[i], subs[i], keys[i], creates[i], versions[i], leases[i], values[i], prevs[i] =
			h.Rev, h.Sub, h.Key, h.CreateRev, h.Version, h.Lease, h.Value, h.PrevRev
		if h.Del {
			del[i] = 1
		}
	}
	out := []sqlcommon.Stmt{{
		SQL: "INSERT INTO kv_history (rev, sub, k, del, create_rev, version, lease, value, prev_rev)" +
			" SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bytea[], ?::smallint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bytea[], ?::bigint[])",
		Args: []any{revs, subs, keys, del, creates, versions, leases, values, prevs},
	}}
	if len(dels) > 0 {
		out = append(out, sqlcommon.Stmt{SQL: "DELETE FROM kv_current WHERE k = ANY(?::bytea[])", Args: []any{dels}})
	}
	// New keys get a plain INSERT: an upsert of a new key costs
	// PostgreSQL a speculative insertion (an extra index probe and WAL
	// record), about half again the insert's time.
	if len(news) > 0 {
		out = append(out, currentRows("", news))
	}
	if len(puts) > 0 {
		out = append(out, currentRows(" ON CONFLICT (k) DO UPDATE SET create_rev = EXCLUDED.create_rev, mod_rev = EXCLUDED.mod_rev,"+
			" version = EXCLUDED.version, lease = EXCLUDED.lease, value = EXCLUDED.value", puts))
	}
	return out
}

// currentRows inserts kvs into kv_current, followed by onConflict.
func currentRows(onConflict string, kvs []backend.KeyValue) sqlcommon.Stmt {
	m := len(kvs)
	pk, pv := make([][]byte, m), make([][]byte, m)
	pc, pm, pver, pl := make([]int64, m), make([]int64, m), make([]int64, m), make([]int64, m)
	for i, kv := range kvs {
		pk[i], pc[i], pm[i], pver[i], pl[i], pv[i] = kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease, kv.Value
	}
	return sqlcommon.Stmt{
		SQL: "INSERT INTO kv_current (k, create_rev, mod_rev, version, lease, value)" +
			" SELECT * FROM unnest(?::bytea[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bytea[])" + onConflict,
		Args: []any{pk, pc, pm, pver, pl, pv},
	}
}

func (d *dialect) PutLease(l backend.Lease) sqlcommon.Stmt {
	return sqlcommon.Stmt{
		SQL: "INSERT INTO leases (id, ttl, expiry_ns) VALUES (?, ?, ?)" +
			" ON CONFLICT (id) DO UPDATE SET ttl = EXCLUDED.ttl, expiry_ns = EXCLUDED.expiry_ns",
		Args: []any{l.ID, l.TTL, sqlcommon.ExpiryNanos(l.Expiry)},
	}
}

func (d *dialect) Committed(rev int64) []sqlcommon.Stmt {
	return []sqlcommon.Stmt{{SQL: "SELECT pg_notify(?, ?)", Args: []any{d.channel, strconv.FormatInt(rev, 10)}}}
}

func (d *dialect) ForUpdateOf(alias string) string { return " FOR UPDATE OF " + alias }

// DeleteReadsItself: compaction deletes each chunk in one statement.
func (d *dialect) DeleteReadsItself() bool { return true }

// KeyIn passes the keys as one array: pgx prepares every distinct SQL text
// on every pooled connection, so an IN list whose length varies with the
// batch would cost a prepare round trip for most batches.
func (d *dialect) KeyIn(col string, keys [][]byte) (string, []any) {
	return col + " = ANY(?::bytea[])", []any{keys}
}

// ServerRejected: an ERROR aborts the transaction, but a FATAL or PANIC
// ends the session (pg_terminate_backend, shutdown), possibly after the
// COMMIT it answers was already done: the outcome is unknown.
func (d *dialect) ServerRejected(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return sev != "FATAL" && sev != "PANIC"
}

// Unavailable: the session ended (FATAL/PANIC: terminated, shutting
// down), the connection could not be made, or pgx says the failed
// statement never reached the server.
func (d *dialect) Unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		sev := pe.SeverityUnlocalized
		if sev == "" {
			sev = pe.Severity
		}
		// 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
		return sev == "FATAL" || sev == "PANIC" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

func (d *dialect) DBSize(ctx context.Context) (int64, error) {
	var n int64
	err := d.pool.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE ns.nspname = current_schema() AND c.relkind = 'r'
		AND c.relname IN ('meta', 'kv_current', 'kv_history', 'leases', 'schema_version')`).Scan(&n)
	return n, sqlcommon.Scrub(err, d.secrets)
}

// VisibleDurable: PostgreSQL flushes a commit's WAL before other sessions
// can see it (with synchronous_commit on).
func (d *dialect) VisibleDurable() bool { return true }

// RunFeed LISTENs on the store's channel; every notification carries a
// committed revision. The revision is also re-read on every (re)connect
// and after a second without notifications.
func (d *dialect) RunFeed(ctx context.Context, h sqlcommon.FeedHooks) {
	const minBackoff = 50 * time.Millisecond
	backoff := minBackoff
	for ctx.Err() == nil {
		connected, err := d.listen(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = minBackoff
		}
		d.log.Warn("postgres change feed disconnected; reconnecting", "err", sqlcommon.Scrub(err, d.secrets), "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// listen runs one LISTEN connection until it fails; connected says it
// got as far as listening.
func (d *dialect) listen(ctx context.Context, h sqlcommon.FeedHooks) (connected bool, err error) {
	c, err := pgx.ConnectConfig(ctx, d.cfg.ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return false, err
	}
	for {
		// Covers notifications missed while disconnected, and is the
		// once-a-second safety net.
		var rev int64
		if err := c.QueryRow(ctx, "SELECT rev FROM meta WHERE id = 1").Scan(&rev); err != nil {
			return true, err
		}
		h.Observe(rev)
		for {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			n, err := c.WaitForNotification(wctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return true, ctx.Err()
				}
				if errors.Is(err, context.DeadlineExceeded) && !c.IsClosed() {
					break
				}
				return true, err
			}
			if r, perr := strconv.ParseInt(n.Payload, 10, 64); perr == nil {
				h.Observe(r)
			}
		}
	}
}

// conn queues statements and sends them in one pipeline with the next query.
type conn struct {
	c    *pgxpool.Conn
	pool *pgxpool.Pool
	q    []sqlcommon.Stmt
}

var rewritten sync.Map // ? SQL -> $n SQL

// pgSQL rewrites ? placeholders to $1, $2, ….
func pgSQL(s string) string {
	if v, ok := rewritten.Load(s); ok {
		return v.(string)
	}
	if !strings.Contains(s, "?") {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	rewritten.Store(s, out)
	return out
}

func (c *conn) Queue(s sqlcommon.Stmt) { c.q = append(c.q, s) }
func (c *conn) Pending() int           { return len(c.q) }
func (c *conn) Truncate(n int)         { clear(c.q[n:]); c.q = c.q[:n] }

func (c *conn) InsertAt(i int, s ...sqlcommon.Stmt) {
	c.q = append(c.q[:i], append(append([]sqlcommon.Stmt{}, s...), c.q[i:]...)...)
}

func (c *conn) Query(ctx context.Context, sql string, args ...any) (sqlcommon.Rows, error) {
	if len(c.q) == 0 {
		rows, err := c.c.Query(ctx, pgSQL(sql), args...)
		if err != nil {
			return nil, err
		}
		return &pgRows{rows: rows}, nil
	}
	b := &pgx.Batch{}
	for _, s := range c.q {
		b.Queue(pgSQL(s.SQL), s.Args...)
	}
	n := len(c.q)
	c.Truncate(0)
	b.Queue(pgSQL(sql), args...)
	br := c.c.SendBatch(ctx, b)
	for range n {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &pgRows{rows: rows, br: br}, nil
}

func (c *conn) Flush(ctx context.Context) error {
	switch len(c.q) {
	case 0:
		return nil
	case 1:
		s := c.q[0]
		c.Truncate(0)
		_, err := c.c.Exec(ctx, pgSQL(s.SQL), s.Args...)
		return err
	}
	b := &pgx.Batch{}
	for _, s := range c.q {
		b.Queue(pgSQL(s.SQL), s.Args...)
	}
	n := len(c.q)
	c.Truncate(0)
	br := c.c.SendBatch(ctx, b)
	for range n {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

func (c *conn) Release(broken bool) {
	c.q = nil
	if broken {
		// Closing the connection also ends any transaction it holds. A
		// broken connection usually means the others are too (server
		// restart, failover): drop them all rather than fail on each.
		_ = c.c.Conn().Close(context.Background())
		c.c.Release()
		c.pool.Reset()
		return
	}
	c.c.Release()
}

type pgRows struct {
	rows   pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *pgRows) Next() bool             { return r.rows.Next() }
func (r *pgRows) Scan(dest ...any) error { return r.rows.Scan(dest...) }
func (r *pgRows) Err() error             { return r.rows.Err() }

func (r *pgRows) Close() error {
	if r.closed {
		return r.err
	}
	r.closed = true
	r.rows.Close()
	r.err = r.rows.Err()
	if r.br != nil {
		if err := r.br.Close(); r.err == nil {
			r.err = err
		}
	}
	return r.err
}

package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
)

// MaxKeySize is the longest key this engine stores.
const MaxKeySize = 3064

// Options tune the engine.
type Options struct {
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBatch caps the Update functions per transaction (0: default).
	MaxBatch int
	// NoWriteCache disables the write path's cache of current versions.
	NoWriteCache bool
}

// Poll intervals of the change feed.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 10 * time.Millisecond
)

// maxQueuedBytes bounds one multi-statement packet (max_allowed_packet is
// 16 MiB by default on MariaDB, 64 MiB on MySQL 8).
const maxQueuedBytes = 8 << 20

// ParseURL parses a mysql:// URL (see the package documentation) into a
// driver configuration. Errors never contain the password.
func ParseURL(u string) (*gomysql.Config, error) {
	rest, ok := strings.CutPrefix(u, "mysql://")
	if !ok {
		return nil, fmt.Errorf("mysql url %s: scheme must be mysql://", sqlcommon.RedactURL(u))
	}
	bad := func(err error) error {
		return fmt.Errorf("mysql url %s: %w", sqlcommon.RedactURL(u), sqlcommon.Scrub(err, sqlcommon.Secrets(u)))
	}
	var cfg *gomysql.Config
	if hostPart := afterAt(rest); strings.HasPrefix(hostPart, "tcp(") || strings.HasPrefix(hostPart, "unix(") {
		c, err := gomysql.ParseDSN(rest)
		if err != nil {
			return nil, bad(err)
		}
		cfg = c
	} else {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, bad(fmt.Errorf("not a url: %w", unwrapURLError(err)))
		}
		if pu.Host == "" {
			return nil, bad(fmt.Errorf("missing host"))
		}
		c, err := gomysql.ParseDSN("/x?" + pu.RawQuery)
		if err != nil {
			return nil, bad(err)
		}
		cfg = c
		cfg.Net = "tcp"
		host, port := pu.Hostname(), pu.Port()
		if port == "" {
			port = "3306"
		}
		cfg.Addr = net.JoinHostPort(host, port)
		cfg.DBName = strings.TrimPrefix(pu.Path, "/")
		if pu.User != nil {
			cfg.User = pu.User.Username()
			cfg.Passwd, _ = pu.User.Password()
		}
	}
	if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
		return nil, bad(fmt.Errorf("the url must name a database"))
	}
	cfg.InterpolateParams = true
	cfg.MultiStatements = true
	return cfg, nil
}

// afterAt returns what follows the userinfo of a DSN.
func afterAt(s string) string {
	slash := strings.Index(s, "/")
	if slash < 0 {
		slash = len(s)
	}
	// A DSN's address may contain '/' (unix socket) so look for the '@'
	// before "tcp(" or "unix(".
	for _, p := range []string{"@tcp(", "@unix("} {
		if i := strings.Index(s, p); i >= 0 {
			return s[i+1:]
		}
	}
	if strings.HasPrefix(s, "tcp(") || strings.HasPrefix(s, "unix(") {
		return s
	}
	if at := strings.LastIndex(s[:slash], "@"); at >= 0 {
		return s[at+1:]
	}
	return s
}

// unwrapURLError drops net/url's quoting of the whole input.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Open connects to the database at url, creates or migrates the schema,
// and returns the engine.
func Open(ctx context.Context, url string, opts Options) (backend.Backend, error) {
	cfg, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	secrets := sqlcommon.Secrets(url)
	if cfg.Passwd != "" {
		secrets = append(secrets, cfg.Passwd)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Logger = driverLogger{log: log, secrets: secrets}
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening mysql %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to mysql %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	d := &dialect{db: db, secrets: secrets, log: log}
	e, err := sqlcommon.New(ctx, d, sqlcommon.Options{Logger: log, MaxBatch: opts.MaxBatch, NoWriteCache: opts.NoWriteCache, Overlap: true, LocalFeed: true})
	if err != nil {
		return nil, fmt.Errorf("opening mysql %s: %w", sqlcommon.RedactURL(url), sqlcommon.Scrub(err, secrets))
	}
	return e, nil
}

type dialect struct {
	db      *sql.DB
	secrets []string
	log     *slog.Logger
}

func (d *dialect) Name() string    { return "mysql" }
func (d *dialect) MaxKeySize() int { return MaxKeySize }
func (d *dialect) Close()          { _ = d.db.Close() }

func (d *dialect) Acquire(ctx context.Context) (sqlcommon.Conn, error) {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return nil, sqlcommon.Scrub(err, d.secrets)
	}
	return &conn{c: c}, nil
}

func (d *dialect) BeginWrite() []sqlcommon.Stmt {
	return []sqlcommon.Stmt{{SQL: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"}, {SQL: "START TRANSACTION"}}
}

func (d *dialect) BeginRead() []sqlcommon.Stmt {
	return []sqlcommon.Stmt{{SQL: "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"}, {SQL: "START TRANSACTION WITH CONSISTENT SNAPSHOT"}}
}

func (d *dialect) LockSchema() sqlcommon.Stmt {
	return sqlcommon.Stmt{SQL: "SELECT GET_LOCK(CONCAT('keelson_schema.', DATABASE()), 60)"}
}

func (d *dialect) UnlockSchema() sqlcommon.Stmt {
	return sqlcommon.Stmt{SQL: "SELECT RELEASE_LOCK(CONCAT('keelson_schema.', DATABASE()))"}
}

func (d *dialect) Migrations() [][]string {
	return [][]string{{
		`CREATE TABLE IF NOT EXISTS meta (id INT NOT NULL PRIMARY KEY, rev BIGINT NOT NULL, compact_rev BIGINT NOT NULL) ENGINE=InnoDB`,
		`INSERT IGNORE INTO meta (id, rev, compact_rev) VALUES (1, 1, 0)`,
		`CREATE TABLE IF NOT EXISTS kv_current (k VARBINARY(3064) NOT NULL PRIMARY KEY, create_rev BIGINT NOT NULL,
			mod_rev BIGINT NOT NULL, version BIGINT NOT NULL, lease BIGINT NOT NULL, value LONGBLOB NOT NULL,
			KEY kv_current_lease (lease, k)) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS kv_history (rev BIGINT NOT NULL, sub INT NOT NULL, k VARBINARY(3064) NOT NULL,
			del SMALLINT NOT NULL, create_rev BIGINT NOT NULL, version BIGINT NOT NULL, lease BIGINT NOT NULL,
			value LONGBLOB NOT NULL, prev_rev BIGINT NOT NULL, PRIMARY KEY (rev, sub),
			UNIQUE KEY kv_history_k_rev (k, rev)) ENGINE=InnoDB`,
		`CREATE TABLE IF NOT EXISTS leases (id BIGINT NOT NULL PRIMARY KEY, ttl BIGINT NOT NULL, expiry_ns BIGINT NOT NULL) ENGINE=InnoDB`,
	}}
}

func placeholders(b *strings.Builder, rows, cols int) {
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
}

func (d *dialect) Apply(hist []sqlcommon.HistoryRow, dels [][]byte, puts, news []backend.KeyValue) []sqlcommon.Stmt {
	var b strings.Builder
	b.WriteString("INSERT INTO kv_history (rev, sub, k, del, create_rev, version, lease, value, prev_rev) VALUES ")
	placeholders(&b, len(hist), 9)
	args := make([]any, 0, 9*len(hist))
	for _, h := range hist {
		del := 0
		if h.Del {
			del = 1
		}
		args = append(args, h.Rev, h.Sub, h.Key, del, h.CreateRev, h.Version, h.Lease, h.Value, h.PrevRev)
	}
	out := []sqlcommon.Stmt{{SQL: b.String(), Args: args}}
	if len(dels) > 0 {
		b.Reset()
		b.WriteString("DELETE FROM kv_current WHERE k IN (")
		args := make([]any, len(dels))
		for i, k := range dels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
			args[i] = k
		}
		b.WriteByte(')')
		out = append(out, sqlcommon.Stmt{SQL: b.String(), Args: args})
	}
	// New keys get a plain INSERT, the others an upsert.
	for _, c := range []struct {
		kvs  []backend.KeyValue
		tail string
	}{
		{news, ""},
		{puts, " ON DUPLICATE KEY UPDATE create_rev = VALUES(create_rev), mod_rev = VALUES(mod_rev)," +
			" version = VALUES(version), lease = VALUES(lease), value = VALUES(value)"},
	} {
		if len(c.kvs) == 0 {
			continue
		}
		b.Reset()
		b.WriteString("INSERT INTO kv_current (k, create_rev, mod_rev, version, lease, value) VALUES ")
		placeholders(&b, len(c.kvs), 6)
		b.WriteString(c.tail)
		args := make([]any, 0, 6*len(c.kvs))
		for _, kv := range c.kvs {
			args = append(args, kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease, kv.Value)
		}
		out = append(out, sqlcommon.Stmt{SQL: b.String(), Args: args})
	}
	return out
}

func (d *dialect) PutLease(l backend.Lease) sqlcommon.Stmt {
	return sqlcommon.Stmt{
		SQL: "INSERT INTO leases (id, ttl, expiry_ns) VALUES (?, ?, ?)" +
			" ON DUPLICATE KEY UPDATE ttl = VALUES(ttl), expiry_ns = VALUES(expiry_ns)",
		Args: []any{l.ID, l.TTL, sqlcommon.ExpiryNanos(l.Expiry)},
	}
}

func (d *dialect) Committed(int64) []sqlcommon.Stmt { return nil }

// ForUpdateOf locks every row the SELECT reads (MariaDB has no OF).
func (d *dialect) ForUpdateOf(string) string { return " FOR UPDATE" }

// KeyIn lists the keys (arguments are interpolated client-side, so the
// SQL text varying with their number costs nothing).
func (d *dialect) KeyIn(col string, keys [][]byte) (string, []any) {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	return col + " IN (?" + strings.Repeat(", ?", len(keys)-1) + ")", args
}

// ServerRejected: an error the server answered with, except those that
// mean it dropped the session (1053 shutdown, 1927 connection killed),
// which may arrive after a COMMIT was done: outcome unknown.
func (d *dialect) ServerRejected(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && !sessionLost(me.Number)
}

// Unavailable: the connection broke or the server dropped the session.
func (d *dialect) Unavailable(err error) bool {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return sessionLost(me.Number) || me.Number == 1040 // too many connections
	}
	return errors.Is(err, gomysql.ErrInvalidConn)
}

// sessionLost: 1053 server shutdown in progress, 1927 connection was
// killed, 2006 server has gone away, 2013 lost connection during query.
func sessionLost(n uint16) bool {
	return n == 1053 || n == 1927 || n == 2006 || n == 2013
}

func (d *dialect) DBSize(ctx context.Context) (int64, error) {
	var n int64
	err := d.db.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED)
		FROM information_schema.tables WHERE table_schema = DATABASE()`).Scan(&n)
	return n, sqlcommon.Scrub(err, d.secrets)
}

// VisibleDurable: InnoDB makes a commit visible before its redo is flushed.
func (d *dialect) VisibleDurable() bool { return false }

// RunFeed polls the meta revision while watchers are active.
func (d *dialect) RunFeed(ctx context.Context, h sqlcommon.FeedHooks) {
	interval := pollMin
	var last int64
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		active, wait := h.WatchersActive()
		if !active {
			select {
			case <-wait:
				interval = pollMin
				continue
			case <-ctx.Done():
				return
			}
		}
		rev, err := d.poll(ctx, last, h)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.log.Warn("mysql change feed poll failed", "err", sqlcommon.Scrub(err, d.secrets))
			interval = 500 * time.Millisecond
		case rev > last && h.Known(rev):
			last = rev // this instance already observed it
			interval = pollMin
		case rev > last && h.Committing(rev):
			// This instance's committer reports it once its COMMIT is
			// answered (durable); poll again soon in case that COMMIT
			// ends in doubt.
			interval = pollMin
		case rev > last:
			// poll made it durable (see syncLog).
			h.Observe(rev)
			last = rev
			interval = pollMin
		default:
			interval = min(2*interval, pollMax)
		}
		t.Reset(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// syncLogSQL commits a tiny write to the meta table's row 2 (row 1 is the
// revision counter; nothing else reads row 2). See syncLog.
const syncLogSQL = "INSERT INTO meta (id, rev, compact_rev) VALUES (2, 1, 0) ON DUPLICATE KEY UPDATE rev = rev + 1"

// syncLog returns once every transaction that committed before it was
// called is durable.
//
// InnoDB makes a commit visible to other sessions (and releases its locks)
// before it flushes the commit's redo; a poll can therefore read a
// revision that a crash of the server then loses, and a watcher handed it
// would take the writes that reuse that revision number after the
// restart for ones it has already seen (phantom events, and a read cache
// missing acknowledged puts). A committed write of our own is flushed up
// to its own log position, which lies past every commit visible before
// it, so once it is answered the revision polled before it is durable. It
// costs a write only when the poll saw a revision this instance is not
// committing itself, and its flush joins the server's group commit.
//
// The read and the write must go to the same server process: a pool
// retries a statement on a new connection, which after a restart would
// confirm a revision read from the server that crashed. poll therefore
// runs both on one pinned connection.
func syncLog(ctx context.Context, c *sql.Conn) error {
	_, err := c.ExecContext(ctx, syncLogSQL)
	return err
}

// poll reads the revision and, if it is above last and neither observed
// by this instance nor being committed by it, makes it durable (syncLog)
// on the same connection before returning it.
func (d *dialect) poll(ctx context.Context, last int64, h sqlcommon.FeedHooks) (int64, error) {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var rev int64
	if err := c.QueryRowContext(ctx, "SELECT rev FROM meta WHERE id = 1").Scan(&rev); err != nil {
		return 0, err
	}
	if rev <= last || h.Known(rev) || h.Committing(rev) {
		return rev, nil
	}
	if err := syncLog(ctx, c); err != nil {
		return 0, fmt.Errorf("log sync: %w", err)
	}
	return rev, nil
}

// conn queues statements and sends them with the next query as one
// multi-statement packet.
type conn struct {
	c      *sql.Conn
	q      []sqlcommon.Stmt
	qBytes int
}

func (c *conn) Queue(s sqlcommon.Stmt) {
	c.q = append(c.q, s)
	c.qBytes += len(s.SQL)
	for _, a := range s.Args {
		if b, ok := a.([]byte); ok {
			c.qBytes += 2 * len(b)
		}
	}
}

func (c *conn) Pending() int { return len(c.q) }

func (c *conn) Truncate(n int) {
	clear(c.q[n:])
	c.q = c.q[:n]
	if n == 0 {
		c.qBytes = 0
	}
}

func (c *conn) InsertAt(i int, s ...sqlcommon.Stmt) {
	c.q = append(c.q[:i], append(append([]sqlcommon.Stmt{}, s...), c.q[i:]...)...)
}

// joined returns the queued statements (and extra) as one string.
func (c *conn) joined(extra *sqlcommon.Stmt) (string, []any) {
	var b strings.Builder
	var args []any
	for i, s := range c.q {
		if i > 0 {
			b.WriteString(";\n")
		}
		b.WriteString(s.SQL)
		args = append(args, s.Args...)
	}
	if extra != nil {
		if len(c.q) > 0 {
			b.WriteString(";\n")
		}
		b.WriteString(extra.SQL)
		args = append(args, extra.Args...)
	}
	c.Truncate(0)
	return b.String(), args
}

func (c *conn) Query(ctx context.Context, q string, args ...any) (sqlcommon.Rows, error) {
	if c.qBytes > maxQueuedBytes {
		if err := c.Flush(ctx); err != nil {
			return nil, err
		}
	}
	full, all := c.joined(&sqlcommon.Stmt{SQL: q, Args: args})
	rows, err := c.c.QueryContext(ctx, full, all...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (c *conn) Flush(ctx context.Context) error {
	for len(c.q) > 0 {
		// Send at most maxQueuedBytes per packet (at least one statement).
		rest := c.q
		size, n := 0, 0
		for n < len(rest) {
			s := len(rest[n].SQL)
			for _, a := range rest[n].Args {
				if b, ok := a.([]byte); ok {
					s += 2 * len(b)
				}
			}
			if n > 0 && size+s > maxQueuedBytes {
				break
			}
			size += s
			n++
		}
		later := append([]sqlcommon.Stmt(nil), rest[n:]...)
		c.q = rest[:n]
		full, all := c.joined(nil)
		if _, err := c.c.ExecContext(ctx, full, all...); err != nil {
			return err
		}
		for _, s := range later {
			c.Queue(s)
		}
	}
	return nil
}

func (c *conn) Release(broken bool) {
	c.q = nil
	if broken {
		_ = c.c.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = c.c.Close()
}

// driverLogger sends the driver's messages (lost connections, mostly) to
// slog at debug level: the engine reports what matters itself.
type driverLogger struct {
	log     *slog.Logger
	secrets []string
}

func (l driverLogger) Print(v ...any) {
	l.log.Debug("mysql driver", "msg", sqlcommon.Scrub(fmt.Errorf("%s", fmt.Sprint(v...)), l.secrets).Error())
}

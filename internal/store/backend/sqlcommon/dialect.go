package sqlcommon

import (
	"context"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Stmt is one SQL statement with its arguments. SQL uses ? placeholders;
// a PostgreSQL Conn rewrites them to $n.
type Stmt struct {
	SQL  string
	Args []any
}

// Rows is the subset of database/sql.Rows and pgx.Rows the engine uses.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Conn is one database connection held for a transaction. Queued
// statements are sent, in order, before the next Query or Flush, in the
// same round trip when the driver allows it.
type Conn interface {
	// Queue appends a statement that returns no rows.
	Queue(s Stmt)
	// Pending is the number of queued statements.
	Pending() int
	// InsertAt inserts statements before the queued statement at index i.
	InsertAt(i int, s ...Stmt)
	// Truncate drops queued statements from index n on.
	Truncate(n int)
	// Query sends the queued statements, then sql, and returns its rows.
	// If a queued statement fails its error is returned.
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	// Flush sends the queued statements.
	Flush(ctx context.Context) error
	// Release returns the connection to its pool; broken discards it.
	Release(broken bool)
}

// Dialect is what differs between database engines.
type Dialect interface {
	// Name is the engine name reported by Status ("postgres", "mysql").
	Name() string
	// MaxKeySize is the longest key the schema's indexes accept.
	MaxKeySize() int
	// Acquire takes a connection from the pool.
	Acquire(ctx context.Context) (Conn, error)

	// BeginWrite starts a read-committed read-write transaction; BeginRead
	// a repeatable-read (snapshot) read-only one.
	BeginWrite() []Stmt
	BeginRead() []Stmt

	// Migrations returns the DDL of each schema version, index 0 being
	// version 1. Each version's statements run in order.
	Migrations() [][]string
	// LockSchema and UnlockSchema serialise migrations across instances.
	LockSchema() Stmt
	UnlockSchema() Stmt

	// Apply returns the statements that record one revision: insert
	// hist into kv_history, delete dels from kv_current, upsert puts and
	// insert news (keys known to have no row in kv_current: creates, which
	// a plain INSERT writes more cheaply than an upsert).
	Apply(hist []HistoryRow, dels [][]byte, puts, news []backend.KeyValue) []Stmt
	// PutLease returns an upsert of one lease.
	PutLease(l backend.Lease) Stmt
	// Committed returns statements to run just before COMMIT of a batch
	// that advanced the revision to rev (e.g. NOTIFY).
	Committed(rev int64) []Stmt
	// ForUpdateOf is the locking clause of a SELECT that locks the rows of
	// table alias (the statement may outer-join others).
	ForUpdateOf(alias string) string
	// KeyIn returns a condition selecting the rows whose column col is one
	// of keys, and its arguments. Its SQL should not depend on how many
	// keys there are where the driver prepares statements per SQL text.
	KeyIn(col string, keys [][]byte) (string, []any)
	// ServerRejected reports an error the server answered with (the
	// transaction is then not committed), as opposed to a broken
	// connection (outcome unknown).
	ServerRejected(err error) bool
	// Unavailable reports a driver-specific sign that the database could
	// not be reached or dropped the session (beyond the generic network
	// errors the engine recognises itself).
	Unavailable(err error) bool
	// DBSize returns the bytes the store's tables occupy.
	DBSize(ctx context.Context) (int64, error)

	// VisibleDurable reports that a commit other sessions can see is
	// already durable (PostgreSQL flushes the WAL first; InnoDB shows a
	// commit before flushing its redo).
	VisibleDurable() bool
	// RunFeed tells the engine about revisions committed by other
	// instances by calling h.Observe, until ctx ends. It must only report
	// revisions that are durable (see FeedHooks.Observe).
	RunFeed(ctx context.Context, h FeedHooks)
	// Close releases the pool.
	Close()
}

// FeedHooks is what RunFeed may use.
type FeedHooks interface {
	// Observe reports that revisions up to rev are committed durably.
	// A revision merely visible is not enough: InnoDB shows a commit to
	// other sessions before its redo is flushed, and a watcher handed a
	// revision that a crash then loses would see that revision number
	// reused for other writes.
	Observe(rev int64)
	// Known reports that rev is at or below a revision this instance
	// already observed.
	Known(rev int64) bool
	// Committing reports that rev is at or below the revision of the
	// batch whose COMMIT this instance has in flight: the committer
	// observes it itself once COMMIT is answered.
	Committing(rev int64) bool
	// WatchersActive returns a channel closed when at least one Watch is
	// running (a poller may idle until then) and whether one is now.
	WatchersActive() (active bool, wait <-chan struct{})
}

// HistoryRow is one kv_history row.
type HistoryRow struct {
	Rev, Sub                  int64
	Key                       []byte
	Del                       bool
	CreateRev, Version, Lease int64
	Value                     []byte
	PrevRev                   int64
}

package sqlcommon

import (
	"context"
	"fmt"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Compact moves the compaction point to rev (one short transaction on the
// meta row), then deletes the history no revision >= rev can see, in
// chunks of Options.CompactChunk revisions, each its own transaction, so
// writers are never blocked for long.
//
// A history row below rev is deleted when it is a delete, or when a newer
// version of its key exists below rev. Versions superseded exactly at rev
// stay: they are the PrevKV of events at rev.
func (e *Engine) Compact(ctx context.Context, rev int64) error {
	if e.closed.Load() {
		return backend.ErrClosed
	}
	if err := e.setCompact(ctx, rev); err != nil {
		return err
	}
	start := time.Now()
	lo, err := e.oldestHistory(ctx)
	if err != nil {
		return fmt.Errorf("compacting to %d: %w", rev, err)
	}
	var deleted int64
	for lo > 0 && lo < rev {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.closed.Load() {
			return backend.ErrClosed
		}
		hi := min(lo+e.opts.CompactChunk, rev)
		n, err := e.compactChunk(ctx, lo, hi, rev)
		if err != nil {
			return fmt.Errorf("compacting revisions %d-%d: %w", lo, hi, err)
		}
		deleted += n
		lo = hi
	}
	e.log.Debug("compacted", "revision", rev, "deleted", deleted, "duration", time.Since(start))
	return nil
}

func (e *Engine) setCompact(ctx context.Context, rev int64) error {
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring connection: %w", err)
	}
	for _, s := range e.d.BeginWrite() {
		conn.Queue(s)
	}
	q := func(sql string, args ...any) (Rows, error) { return conn.Query(ctx, sql, args...) }
	cur, compact, err := readMeta(q, true)
	if err == nil {
		switch {
		case rev > cur:
			err = fmt.Errorf("compact to %d (current %d): %w", rev, cur, backend.ErrFutureRevision)
		case rev <= compact:
			err = fmt.Errorf("compact to %d (compacted to %d): %w", rev, compact, backend.ErrCompacted)
		}
		if err != nil {
			conn.Queue(stmtRollback)
			conn.Release(conn.Flush(ctx) != nil)
			return err
		}
		conn.Queue(Stmt{SQL: "UPDATE meta SET compact_rev = ? WHERE id = 1", Args: []any{rev}})
		conn.Queue(stmtCommit)
		err = conn.Flush(ctx)
	}
	if err != nil {
		conn.Truncate(0)
		conn.Queue(stmtRollback)
		_ = conn.Flush(ctx)
		conn.Release(true)
		return fmt.Errorf("compact to %d: %w", rev, err)
	}
	conn.Release(false)
	return nil
}

func (e *Engine) oldestHistory(ctx context.Context) (int64, error) {
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	rows, err := conn.Query(ctx, "SELECT MIN(rev) FROM kv_history")
	if err != nil {
		conn.Release(true)
		return 0, err
	}
	var lo *int64
	if rows.Next() {
		err = rows.Scan(&lo)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	conn.Release(err != nil)
	if err != nil || lo == nil {
		return 0, err
	}
	return *lo, nil
}

// compactChunk deletes the droppable history rows with lo <= rev < hi.
func (e *Engine) compactChunk(ctx context.Context, lo, hi, compact int64) (int64, error) {
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	broken := true
	defer func() { conn.Release(broken) }()
	for _, s := range e.d.BeginWrite() {
		conn.Queue(s)
	}
	const droppable = " h.rev >= ? AND h.rev < ? AND (h.del = 1" +
		" OR EXISTS (SELECT 1 FROM kv_history n WHERE n.k = h.k AND n.rev > h.rev AND n.rev < ?))"
	if sd, ok := e.d.(selfDeleter); ok && sd.DeleteReadsItself() {
		// One statement: no list of primary keys to send back and plan.
		rows, err := conn.Query(ctx, "WITH d AS (DELETE FROM kv_history h WHERE"+droppable+" RETURNING 1) SELECT COUNT(*) FROM d", lo, hi, compact)
		if err != nil {
			return 0, err
		}
		var n int64
		if rows.Next() {
			err = rows.Scan(&n)
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
		conn.Queue(stmtCommit)
		if err := conn.Flush(ctx); err != nil {
			return 0, err
		}
		broken = false
		return n, nil
	}
	rows, err := conn.Query(ctx, "SELECT h.rev, h.sub FROM kv_history h WHERE"+droppable, lo, hi, compact)
	if err != nil {
		return 0, err
	}
	type pk struct{ rev, sub int64 }
	var del []pk
	for rows.Next() {
		var p pk
		if err := rows.Scan(&p.rev, &p.sub); err != nil {
			rows.Close()
			return 0, err
		}
		del = append(del, p)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, err
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	const perStmt = 500
	for i := 0; i < len(del); i += perStmt {
		part := del[i:min(i+perStmt, len(del))]
		sql := make([]byte, 0, 64+len(part)*8)
		sql = append(sql, "DELETE FROM kv_history WHERE (rev, sub) IN ("...)
		args := make([]any, 0, 2*len(part))
		for j, p := range part {
			if j > 0 {
				sql = append(sql, ',')
			}
			sql = append(sql, "(?, ?)"...)
			args = append(args, p.rev, p.sub)
		}
		sql = append(sql, ')')
		conn.Queue(Stmt{SQL: string(sql), Args: args})
	}
	conn.Queue(stmtCommit)
	if err := conn.Flush(ctx); err != nil {
		conn.Truncate(0)
		conn.Queue(stmtRollback)
		_ = conn.Flush(ctx)
		return 0, err
	}
	broken = false
	return int64(len(del)), nil
}

// selfDeleter is implemented by dialects whose DELETE may read the table
// it deletes from in a subquery (PostgreSQL; MySQL refuses it), so that a
// compaction chunk is one statement.
type selfDeleter interface {
	DeleteReadsItself() bool
}

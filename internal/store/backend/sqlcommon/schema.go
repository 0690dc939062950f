package sqlcommon

import (
	"context"
	"fmt"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// migrate brings the schema to the newest version this build knows, under
// the dialect's schema lock, and refuses a database with a newer one.
func (e *Engine) migrate(ctx context.Context) error {
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	broken := true
	defer func() { conn.Release(broken) }()
	exec := func(sql string, args ...any) error {
		conn.Queue(Stmt{SQL: sql, Args: args})
		return conn.Flush(ctx)
	}
	lock := e.d.LockSchema()
	rows, err := conn.Query(ctx, lock.SQL, lock.Args...)
	if err != nil {
		return fmt.Errorf("locking schema: %w", err)
	}
	_ = rows.Close()
	defer func() {
		unlock := e.d.UnlockSchema()
		if rows, err := conn.Query(ctx, unlock.SQL, unlock.Args...); err == nil {
			_ = rows.Close()
		}
	}()
	if err := exec("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	rows, err = conn.Query(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_version")
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	var have int64
	if rows.Next() {
		err = rows.Scan(&have)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	migs := e.d.Migrations()
	want := int64(len(migs))
	if have > want {
		return fmt.Errorf("database schema version %d is newer than this build's %d (upgrade keelson): %w", have, want, backend.ErrSchemaVersion)
	}
	for v := have + 1; v <= want; v++ {
		for _, ddl := range migs[v-1] {
			if err := exec(ddl); err != nil {
				return fmt.Errorf("migrating schema to version %d: %w", v, err)
			}
		}
		if err := exec("INSERT INTO schema_version (version) VALUES (?)", v); err != nil {
			return fmt.Errorf("recording schema version %d: %w", v, err)
		}
		e.log.Info("migrated schema", "version", v)
	}
	broken = false
	return nil
}

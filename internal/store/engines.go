package store

import (
	"context"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/embedded"
	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/postgres"
)

// openEmbedded opens the embedded engine in cfg.DataDir.
func openEmbedded(cfg Config) (backend.Backend, error) {
	return embedded.Open(cfg.DataDir, embedded.Options{Logger: cfg.logger()})
}

// sqlOpenTimeout bounds connecting to a database and migrating its schema.
const sqlOpenTimeout = time.Minute

// openPostgres opens the PostgreSQL engine at cfg.Backend (errors never
// show the password).
func openPostgres(cfg Config) (backend.Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sqlOpenTimeout)
	defer cancel()
	return postgres.Open(ctx, cfg.Backend, postgres.Options{Logger: cfg.logger()})
}

// openMySQL opens the MySQL / MariaDB / TiDB engine at cfg.Backend.
func openMySQL(cfg Config) (backend.Backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sqlOpenTimeout)
	defer cancel()
	return mysql.Open(ctx, cfg.Backend, mysql.Options{Logger: cfg.logger()})
}

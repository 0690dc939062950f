package postgres

import (
	"context"

	"github.com/keelson-dev/keelson/internal/plugin"
	"github.com/keelson-dev/keelson/internal/store/backend"
)

func init() {
	factory := backend.Factory(func(ctx context.Context, opts backend.OpenOptions) (backend.Backend, error) {
		return Open(ctx, opts.URL, Options{Logger: opts.Logger})
	})
	plugin.Register(plugin.Info{
		Name:    backend.PluginPrefix + "postgres",
		Summary: "PostgreSQL: postgres://USER@HOST:PORT/DB, several instances on one database",
		Factory: factory,
	})
	// libpq also accepts the postgresql:// scheme.
	plugin.Register(plugin.Info{
		Name:    backend.PluginPrefix + "postgresql",
		Summary: "PostgreSQL (alias of postgres): postgresql://USER@HOST:PORT/DB",
		Factory: factory,
	})
}

package postgres

import (
	"context"

	"github.com/keelson-dev/keelson/internal/plugin"
	"github.com/keelson-dev/keelson/internal/store/backend"
)

func init() {
	plugin.Register(plugin.Info{
		Name:    backend.PluginPrefix + "postgres",
		Summary: "PostgreSQL: postgres://USER@HOST:PORT/DB, several instances on one database",
		Factory: backend.Factory(func(ctx context.Context, opts backend.OpenOptions) (backend.Backend, error) {
			return Open(ctx, opts.URL, Options{Logger: opts.Logger})
		}),
	})
}

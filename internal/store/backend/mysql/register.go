package mysql

import (
	"context"

	"github.com/keelson-dev/keelson/internal/plugin"
	"github.com/keelson-dev/keelson/internal/store/backend"
)

func init() {
	plugin.Register(plugin.Info{
		Name:    backend.PluginPrefix + "mysql",
		Summary: "MySQL 8 / MariaDB 10.11 / TiDB: mysql://USER@tcp(HOST:PORT)/DB",
		Factory: backend.Factory(func(ctx context.Context, opts backend.OpenOptions) (backend.Backend, error) {
			return Open(ctx, opts.URL, Options{Logger: opts.Logger})
		}),
	})
}

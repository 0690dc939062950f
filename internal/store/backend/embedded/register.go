package embedded

import (
	"context"

	"github.com/keelson-dev/keelson/internal/plugin"
	"github.com/keelson-dev/keelson/internal/store/backend"
)

func init() {
	plugin.Register(plugin.Info{
		Name:    backend.PluginPrefix + "embedded",
		Summary: "write-ahead log and in-memory index in --data-dir (the default)",
		Factory: backend.Factory(func(ctx context.Context, opts backend.OpenOptions) (backend.Backend, error) {
			return Open(opts.DataDir, Options{Logger: opts.Logger})
		}),
	})
}

package backend

import (
	"context"
	"log/slog"
)

// PluginPrefix is the plugin-registry namespace of storage engines: an
// engine registers itself as PluginPrefix+name (see internal/plugin), and
// `keelson store --backend` picks it by the URL's scheme ("" = embedded).
const PluginPrefix = "store.backend."

// OpenOptions is what the store hands an engine factory.
type OpenOptions struct {
	// URL is the --backend value ("" for the embedded engine). It may hold
	// credentials: engines never log it or put it in errors unredacted.
	URL string
	// DataDir is --data-dir, used by file engines.
	DataDir string
	Logger  *slog.Logger
}

// Factory opens an engine. The registry stores it as plugin.Info.Factory.
type Factory func(ctx context.Context, opts OpenOptions) (Backend, error)

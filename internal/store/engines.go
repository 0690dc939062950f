package store

// The engines compiled into the store. Each registers itself in the plugin
// registry as "store.backend.<name>"; internal/plugin/all links them into
// the keelson binary, and these imports keep them linked wherever the store
// package is used on its own (tests, testenv).
import (
	_ "github.com/keelson-dev/keelson/internal/store/backend/embedded"
	_ "github.com/keelson-dev/keelson/internal/store/backend/mysql"
	_ "github.com/keelson-dev/keelson/internal/store/backend/postgres"
)

package conformance

import (
	"testing"

	"github.com/keelson-dev/keelson/internal/store"
	"github.com/keelson-dev/keelson/internal/store/conformance/dbtest"
)

// keelsonServer returns a serverFunc for keelson store in-process on
// engine: default configuration (fsync on for the embedded engine) on a
// free port, each server on its own empty database (a temp dir, a fresh
// PostgreSQL schema, a fresh MariaDB/MySQL database), dropped when the
// test ends.
func keelsonServer(engine dbtest.Engine) serverFunc {
	return func(t testing.TB, opts serverOptions) []string {
		t.Helper()
		s := dbtest.StartStore(t, engine.NewBackend(t), func(cfg *store.Config) {
			if opts.progressNotifyInterval > 0 {
				cfg.WatchProgressNotifyInterval = opts.progressNotifyInterval
			}
		})
		return []string{s.Addr()}
	}
}

package sqltest

import (
	"sync"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// PersistentOpener adapts db to backendtest.RunPersistent: each directory
// the suite names maps to a database created on its first use (dropped
// when the test that first used it ends).
func PersistentOpener(db DB) backendtest.PersistentOpener {
	var mu sync.Mutex
	urls := map[string]string{}
	return func(t *testing.T, dir string) backend.Backend {
		t.Helper()
		mu.Lock()
		u, ok := urls[dir]
		if !ok {
			u = db.NewURL(t)
			urls[dir] = u
		}
		mu.Unlock()
		b, err := db.Open(t.Context(), u)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return b
	}
}

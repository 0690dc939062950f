package difftest

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/keelson-dev/keelson/internal/store"
)

// startKeelson is a serverFunc for keelson store in-process: default
// configuration (embedded engine, fsync on) in a temp dir, on a free port.
func startKeelson(t testing.TB) string {
	t.Helper()
	cfg := store.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = ""
	cfg.DataDir = t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := store.New(cfg)
	if err != nil {
		t.Fatalf("keelson store: %v", err)
	}
	// Start returns once the listener accepts connections.
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("starting keelson store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing keelson store: %v", err)
		}
	})
	return s.Addr()
}

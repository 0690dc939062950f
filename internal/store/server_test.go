package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/embedded"
)

// testServer is a Server on port 0 over an embedded engine in a temp dir.
type testServer struct {
	*Server
	dir string
	be  *embedded.Engine
}

type testOpt func(*Config)

func startServer(t testing.TB, dir string, opts ...testOpt) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	be, err := embedded.Open(dir, embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("opening engine: %v", err)
	}
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg, WithBackend(be))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		be.Close()
		t.Fatalf("start: %v", err)
	}
	ts := &testServer{Server: s, dir: dir, be: be}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server and its engine (idempotent).
func (ts *testServer) stop(t testing.TB) {
	if err := ts.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	ts.be.Close()
}

func newClient(t testing.TB, s *testServer) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Addr()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"bad listen", func(c *Config) { c.Listen = "nope" }, "listen address"},
		{"bad metrics", func(c *Config) { c.MetricsListen = "x" }, "metrics listen"},
		{"zero max request", func(c *Config) { c.MaxRequestBytes = 0 }, "max request bytes"},
		{"cert without key", func(c *Config) { c.CertFile = "/x" }, "together"},
		{"ca without cert", func(c *Config) { c.ClientCAFile = "/x" }, "client CA"},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "data dir"},
		{"file as data dir", func(c *Config) { c.DataDir = "server_test.go" }, "not a directory"},
		{"sql backend skips data dir", func(c *Config) { c.DataDir = ""; c.Backend = "postgres://u:secret@h/db" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mod(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestOpenBackendNotCompiledIn(t *testing.T) {
	c := Default()
	c.Backend = "cockroach://root:hunter2@localhost/db"
	_, err := openBackend(c)
	if err == nil || !strings.Contains(err.Error(), `backend "cockroach" not compiled in`) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks credentials: %v", err)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	s := startServer(t, "")
	for _, base := range []string{"http://" + s.MetricsAddr(), "http://" + s.Addr()} {
		for _, path := range []string{"/health", "/readyz", "/metrics"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s%s: %v", base, path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s%s: %d %s", base, path, resp.StatusCode, body)
			}
			if path == "/health" && !strings.Contains(string(body), `"health":"true"`) {
				t.Fatalf("health body %s", body)
			}
			if path == "/metrics" && !strings.Contains(string(body), "keelson_store_revision") {
				t.Fatalf("metrics lack keelson_store_revision")
			}
		}
	}
}

var _ backend.Backend = (*embedded.Engine)(nil)

// TestEngineMetrics checks the embedded engine's commit metrics reach the
// store's /metrics and count the writes made.
func TestEngineMetrics(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	const puts = 5
	for i := range puts {
		if _, err := c.Put(t.Context(), fmt.Sprintf("/m/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"keelson_store_embedded_commit_sync_duration_seconds_bucket",
		"keelson_store_embedded_commits_total",
		"keelson_store_embedded_segments 1",
		"keelson_store_embedded_checkpoints_total 0",
		"keelson_store_embedded_log_bytes_since_checkpoint ",
		"keelson_store_db_size_in_use_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var updates float64
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "keelson_store_embedded_commit_batch_updates_sum "); ok {
			updates, _ = strconv.ParseFloat(v, 64)
		}
	}
	if updates < puts {
		t.Errorf("commit_batch_updates_sum = %v, want at least %d (the puts made)", updates, puts)
	}
}

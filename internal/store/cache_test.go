package store

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The read cache answers the store's Ranges (forced on for the embedded
// engine here) and reports hits in /metrics.
func TestReadCacheServesAndReportsMetrics(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.Cache = "memory" })
	if ts.cache == nil {
		t.Fatal("cache not started")
	}
	cli := newClient(t, ts)
	ctx := ctxT(t)
	for i := range 20 {
		put, err := cli.Put(ctx, "k", strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		get, err := cli.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != strconv.Itoa(i) || get.Header.Revision < put.Header.Revision {
			t.Fatalf("read after write %d: %v", i, get.Kvs)
		}
	}
	if err := ts.cache.WaitApplied(ctx, ts.currentRevision(ctx)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + ts.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^keelson_store_cache_hits_total (\d+)`).FindSubmatch(body)
	if m == nil || string(m[1]) == "0" {
		t.Fatalf("no cache hits in /metrics:\n%s", grepLines(body, "keelson_store_cache"))
	}
	if !bytes.Contains(body, []byte(`keelson_store_cache_misses_total{reason="behind"}`)) {
		t.Fatalf("no miss counters in /metrics")
	}
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A Redis URL's password never reaches errors or logs.
func TestReadCacheRedisURLRedacted(t *testing.T) {
	var logs bytes.Buffer
	cfg := Default()
	cfg.Listen, cfg.MetricsListen, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
	cfg.Cache = "redis://user:s3cretpw@127.0.0.1:1/0"
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(t.Context())
	if err == nil {
		s.Close()
		t.Fatal("start with an unreachable redis succeeded")
	}
	if strings.Contains(err.Error(), "s3cretpw") || strings.Contains(logs.String(), "s3cretpw") {
		t.Fatalf("password leaked: %v\n%s", err, logs.String())
	}
	bad := Default()
	bad.Cache = "memcached://user:s3cretpw@x"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "cache") || strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("bad cache setting: %v", err)
	}
}

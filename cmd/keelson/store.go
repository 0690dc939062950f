package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/keelson-dev/keelson/internal/store"
)

// runStore serves the etcd v3 API until ctx ends (SIGINT/SIGTERM).
func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := store.Default()
	fs := flag.NewFlagSet("keelson store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: keelson store [flags]\n\n"+
			"Serves the etcd v3 gRPC API (KV, Watch, Lease, Maintenance, Cluster) so that\n"+
			"kube-apiserver and etcdctl use it as they use etcd 3.6. Runs until SIGINT/SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "host:port of the etcd gRPC API (port 0 picks a free port)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the embedded engine's files (created if missing)")
	fs.StringVar(&cfg.Backend, "backend", cfg.Backend, "storage engine: empty for the embedded engine in --data-dir, or a database URL (postgres://…, mysql://…)")
	fs.StringVar(&cfg.Cache, "cache", cfg.Cache, "read cache in front of the engine: empty for the engine's default (in-process for postgres and mysql, off for embedded), \"off\", \"memory\" (in-process), or redis://[user:password@]host:port/db[?prefix=P&ttl=1h] for in-process plus a Redis value tier shared by instances. Reads are served from memory only when the engine's current revision (one tiny query) proves the cache current, so they stay linearizable across instances")
	fs.Int64Var(&cfg.CacheMaxBytes, "cache-max-bytes", cfg.CacheMaxBytes, "memory budget of the read cache in bytes (keys, metadata, recent history, values; values are evicted first, and the cache turns itself off if keys alone do not fit)")
	fs.StringVar(&cfg.CertFile, "cert-file", "", "TLS certificate for the gRPC API (with --key-file); enables TLS")
	fs.StringVar(&cfg.KeyFile, "key-file", "", "TLS private key for the gRPC API")
	fs.StringVar(&cfg.ClientCAFile, "trusted-ca-file", "", "CA bundle; when set, clients must present a certificate signed by it")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest write request accepted, in bytes (etcd's default 1.5 MiB)")
	fs.IntVar(&cfg.MaxTxnOps, "max-txn-ops", cfg.MaxTxnOps, "most operations in one transaction branch")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "host:port serving /metrics, /health, /readyz and /debug/pprof over HTTP (empty disables)")
	fs.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", cfg.WatchProgressNotifyInterval, "interval of progress notifications to idle watchers that asked for them")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "member name reported by MemberList")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("bad --log-level %q: want debug, info, warn or error", *logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(*logFormat) {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return fmt.Errorf("bad --log-format %q: want text or json", *logFormat)
	}
	srv, err := store.New(cfg)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

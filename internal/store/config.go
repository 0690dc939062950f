package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// Config configures a Server. Fill it from Default and override fields;
// Validate reports the first problem.
type Config struct {
	// Listen is the host:port of the etcd gRPC API. Port 0 picks a free
	// port (see Server.Addr).
	Listen string
	// DataDir holds the embedded engine's files.
	DataDir string
	// Backend selects the engine: "" (or "embedded") for the embedded
	// engine in DataDir, or a database URL ("postgres://…", "mysql://…").
	// It may hold credentials and is never logged.
	Backend string

	// Cache selects the read cache in front of the engine (package
	// internal/store/backend/cache): "" picks the engine's default (an
	// in-process cache for the SQL engines, none for the embedded engine,
	// whose index already is in memory), "off", "memory", or a
	// redis://[user:password@]host:port/db URL for an in-process cache
	// backed by a shared Redis value tier (query: prefix=, ttl=). It may
	// hold credentials and is never logged unredacted.
	Cache string
	// CacheMaxBytes bounds the in-process cache's memory (keys, metadata,
	// recent history and values).
	CacheMaxBytes int64

	// CertFile and KeyFile enable TLS on Listen. ClientCAFile additionally
	// requires and verifies client certificates signed by that CA.
	CertFile, KeyFile, ClientCAFile string

	// MaxRequestBytes is the largest write request accepted (etcd's
	// --max-request-bytes, default 1.5 MiB). gRPC accepts messages up to
	// MaxRequestBytes plus 512 KiB of overhead, as etcd does.
	MaxRequestBytes int
	// MaxTxnOps caps the operations in one Txn branch (etcd's --max-txn-ops).
	MaxTxnOps int

	// MetricsListen is the host:port of the HTTP endpoint serving
	// /metrics, /health, /readyz and /debug/pprof. Empty disables it;
	// port 0 picks a free port (see Server.MetricsAddr).
	MetricsListen string

	// WatchProgressNotifyInterval is how often watchers created with
	// progress_notify get a progress notification when idle (etcd's
	// --experimental-watch-progress-notify-interval, default 10m).
	WatchProgressNotifyInterval time.Duration
	// WatchRingEvents is how many recent events the watch hub keeps in
	// memory; watchers further behind catch up from the backend.
	WatchRingEvents int

	// Name is this member's name, reported by MemberList and Status.
	Name string

	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock used for lease expiry; nil means time.Now.
	Now func() time.Time
}

// Default values, as etcd's where etcd has one.
const (
	DefaultListen                      = "127.0.0.1:2379"
	DefaultDataDir                     = "./keelson-data"
	DefaultMetricsListen               = "127.0.0.1:2381"
	DefaultMaxRequestBytes             = 1572864 // 1.5 MiB, etcd's default
	DefaultMaxTxnOps                   = 128
	DefaultWatchProgressNotifyInterval = 10 * time.Minute
	DefaultWatchRingEvents             = 64 * 1024
	DefaultName                        = "default"
	DefaultCacheMaxBytes               = 256 << 20

	// grpcOverheadBytes is added to MaxRequestBytes for the gRPC receive
	// limit, as etcd does.
	grpcOverheadBytes = 512 * 1024
	// maxRequestBytesLimit keeps MaxRequestBytes+overhead within int32.
	maxRequestBytesLimit = 1<<31 - 1 - grpcOverheadBytes
)

// Default returns the default configuration.
func Default() Config {
	return Config{
		Listen:                      DefaultListen,
		DataDir:                     DefaultDataDir,
		MaxRequestBytes:             DefaultMaxRequestBytes,
		MaxTxnOps:                   DefaultMaxTxnOps,
		MetricsListen:               DefaultMetricsListen,
		WatchProgressNotifyInterval: DefaultWatchProgressNotifyInterval,
		WatchRingEvents:             DefaultWatchRingEvents,
		Name:                        DefaultName,
		CacheMaxBytes:               DefaultCacheMaxBytes,
	}
}

// Validate reports the first invalid field. It does not touch the network;
// it checks that DataDir, if it exists, is a directory.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics listen address %q: %w", c.MetricsListen, err)
		}
	}
	if c.MaxRequestBytes <= 0 || c.MaxRequestBytes > maxRequestBytesLimit {
		return fmt.Errorf("max request bytes %d: must be between 1 and %d", c.MaxRequestBytes, maxRequestBytesLimit)
	}
	if c.MaxTxnOps <= 0 {
		return fmt.Errorf("max txn ops %d: must be positive", c.MaxTxnOps)
	}
	if c.WatchProgressNotifyInterval <= 0 {
		return fmt.Errorf("watch progress notify interval %v: must be positive", c.WatchProgressNotifyInterval)
	}
	if c.WatchRingEvents <= 0 {
		return fmt.Errorf("watch ring events %d: must be positive", c.WatchRingEvents)
	}
	switch {
	case c.Cache == "", c.Cache == "off", c.Cache == "memory":
	case strings.HasPrefix(c.Cache, "redis://"), strings.HasPrefix(c.Cache, "rediss://"):
	default:
		return fmt.Errorf("cache %q: want off, memory or a redis:// url", cacheKind(c.Cache))
	}
	if c.CacheMaxBytes <= 0 {
		return fmt.Errorf("cache max bytes %d: must be positive", c.CacheMaxBytes)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls: cert file and key file must be given together")
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		return errors.New("tls: client CA file needs a cert file and key file")
	}
	for _, f := range []string{c.CertFile, c.KeyFile, c.ClientCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	if engineOf(c.Backend) == "embedded" {
		if c.DataDir == "" {
			return errors.New("data dir must not be empty")
		}
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			return fmt.Errorf("data dir %q is not a directory", c.DataDir)
		}
	}
	return nil
}

// engineOf names the engine a Backend setting selects, without exposing
// the rest of the URL (which may hold credentials).
func engineOf(b string) string {
	if b == "" || b == "embedded" {
		return "embedded"
	}
	if i := strings.Index(b, "://"); i > 0 {
		return b[:i]
	}
	return "unknown"
}

// cacheKind names a Cache setting without the rest of a URL (which may
// hold credentials).
func cacheKind(c string) string {
	if i := strings.Index(c, "://"); i > 0 {
		return c[:i] + "://…"
	}
	return c
}

func (c Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

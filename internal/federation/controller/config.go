package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// Config configures the control plane. Flags fill it in cmd/keelson.
type Config struct {
	// Host is the host kube-apiserver.
	Host *rest.Config
	// Workers reconcile objects concurrently; default 16.
	Workers int
	// HostQPS and HostBurst limit the client of the host apiserver;
	// MemberQPS and MemberBurst the client of each member (the limit is
	// per member). Defaults 500 and 1000 each.
	HostQPS     float32
	HostBurst   int
	MemberQPS   float32
	MemberBurst int
	// HealthInterval between probes of each member; default 10s.
	HealthInterval time.Duration
	// HealthTimeout of one probe; default 5s.
	HealthTimeout time.Duration
	// MemberTimeout bounds one read or write to a member cluster, so
	// that an unreachable member (a stopped apiserver keeps connections
	// open) cannot hold a worker; default 15s.
	MemberTimeout time.Duration
	// Placement plugins in order; empty means placement.DefaultPlugins.
	Placement []placement.PluginConfig
	// InstallCRDs installs (or updates) the federation CRDs at start;
	// default true via Default().
	InstallCRDs bool
	// Registerer receives the metrics; nil means none are registered.
	Registerer prometheus.Registerer
	// Clock is injected for failover timing; default the real clock.
	Clock clock.PassiveClock
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Default returns a Config with every default filled in (Host unset).
func Default() Config {
	return Config{
		Workers:        16,
		HostQPS:        500,
		HostBurst:      1000,
		MemberQPS:      500,
		MemberBurst:    1000,
		HealthInterval: 10 * time.Second,
		HealthTimeout:  5 * time.Second,
		MemberTimeout:  15 * time.Second,
		InstallCRDs:    true,
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	var errs []error
	if c.Host == nil {
		errs = append(errs, errors.New("host: a host kube-apiserver configuration is required"))
	}
	if c.Workers <= 0 {
		errs = append(errs, fmt.Errorf("workers: must be positive, got %d", c.Workers))
	}
	if c.HostQPS <= 0 || c.HostBurst <= 0 || c.MemberQPS <= 0 || c.MemberBurst <= 0 {
		errs = append(errs, fmt.Errorf("client limits must be positive: host qps %g burst %d, member qps %g burst %d",
			c.HostQPS, c.HostBurst, c.MemberQPS, c.MemberBurst))
	}
	if c.HealthInterval <= 0 || c.HealthTimeout <= 0 || c.MemberTimeout <= 0 {
		errs = append(errs, errors.New("health interval, health timeout and member timeout must be positive"))
	}
	if _, err := placement.New(c.Placement); err != nil {
		errs = append(errs, fmt.Errorf("placement: %w", err))
	}
	return errors.Join(errs...)
}

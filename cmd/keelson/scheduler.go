package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	_ "github.com/keelson-dev/keelson/internal/plugin/all"
	"github.com/keelson-dev/keelson/internal/scheduler"
)

func runScheduler(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson scheduler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to schedule for (required)")
	configPath := fs.String("config", "", "SchedulerConfiguration file (apiVersion keelson.dev/v1alpha1); default: one profile \"keelson\" with every plugin")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and /healthz here, overriding the config (default :10261; \"off\" disables)")
	instanceID := fs.String("instance-id", "", "name of this instance in node claims (default: host name and pid)")
	single := fs.Bool("single-instance", false, "skip the per-node claim ledger: only safe when this is the only keelson scheduler")
	verbose := fs.Bool("v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: keelson scheduler --kubeconfig FILE [--config FILE] [flags]

Schedules the pods whose spec.schedulerName names one of the config's
profiles (default "keelson"). Several instances may run at once: each
claims room on a node in a per-node Lease (namespace from the config,
default kube-system) before binding, so no node is overcommitted.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		fmt.Fprintln(stderr, "--kubeconfig is required")
		fs.Usage()
		return errUsage
	}
	cfg := scheduler.Default()
	if *configPath != "" {
		var err error
		if cfg, err = scheduler.Load(*configPath); err != nil {
			return err
		}
	}
	switch *metricsAddr {
	case "":
	case "off":
		cfg.MetricsAddress = ""
	default:
		cfg.MetricsAddress = *metricsAddr
	}
	if *instanceID != "" {
		cfg.MultiInstance.InstanceID = *instanceID
	}
	if *single {
		cfg.MultiInstance.Enabled = false
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rest, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	rest.QPS, rest.Burst = cfg.ClientQPS, cfg.ClientBurst
	rest.UserAgent = "keelson-scheduler/" + Version
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s, err := scheduler.New(cfg, scheduler.Options{Client: client, Registerer: reg, Logger: logger})
	if err != nil {
		return err
	}
	if cfg.MetricsAddress != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			return fmt.Errorf("listening for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
		logger.Info("serving metrics", "addr", ln.Addr().String())
	}
	return s.Start(ctx)
}

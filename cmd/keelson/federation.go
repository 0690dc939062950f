package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keelson-dev/keelson/internal/federation/controller"
)

const federationUsage = `Usage:
  keelson federation --kubeconfig HOST [flags]          run the control plane
  keelson federation join NAME --kubeconfig MEMBER --host-kubeconfig HOST [flags]
  keelson federation unjoin NAME --host-kubeconfig HOST
  keelson federation explain NAMESPACE/NAME --kind KIND --host-kubeconfig HOST

Propagates ordinary objects from a host kube-apiserver to member clusters
(see docs/federation.md). Run 'keelson federation <sub> --help' for flags.
`

func runFederation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "join":
			return runFederationJoin(ctx, args[1:], stdout, stderr)
		case "unjoin":
			return runFederationUnjoin(ctx, args[1:], stdout, stderr)
		case "explain":
			return runFederationExplain(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("keelson federation", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := controller.Default()
	var hostQPS, memberQPS float64
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the host kube-apiserver (required)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9464", "address serving /metrics and /debug/pprof (empty: off)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "objects reconciled concurrently")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", cfg.HealthInterval, "time between health probes of each member")
	fs.DurationVar(&cfg.HealthTimeout, "health-timeout", cfg.HealthTimeout, "timeout of one member health probe")
	fs.Float64Var(&hostQPS, "host-qps", float64(cfg.HostQPS), "requests per second the control plane may send to the host apiserver")
	fs.IntVar(&cfg.HostBurst, "host-burst", cfg.HostBurst, "burst above --host-qps")
	fs.Float64Var(&memberQPS, "member-qps", float64(cfg.MemberQPS), "requests per second the control plane may send to each member apiserver")
	fs.IntVar(&cfg.MemberBurst, "member-burst", cfg.MemberBurst, "burst above --member-qps")
	fs.DurationVar(&cfg.MemberTimeout, "member-timeout", cfg.MemberTimeout, "timeout of one read or write to a member cluster")
	fs.BoolVar(&cfg.InstallCRDs, "install-crds", cfg.InstallCRDs, "install or update the federation CRDs on the host at start")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), federationUsage+"\nFlags of the control plane:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, err := hostConfig(*kubeconfig, "--kubeconfig")
	if err != nil {
		return err
	}
	cfg.Host = host
	cfg.HostQPS, cfg.MemberQPS = float32(hostQPS), float32(memberQPS)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	c, err := controller.New(cfg)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Addr: *metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Logger.Error("metrics server", "addr", *metricsAddr, "err", err)
			}
		}()
		defer srv.Close()
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// hostConfig loads a kubeconfig named by flag; a missing one is a usage
// error that says which flag.
func hostConfig(path, flagName string) (*rest.Config, error) {
	if path == "" {
		return nil, fmt.Errorf("%s is required: the kubeconfig of the host kube-apiserver", flagName)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// splitPositional takes one leading positional argument (NAME) off args,
// so that both "join NAME --flags" and "join --flags NAME" work.
func splitPositional(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") && (n < 2 || !strings.HasPrefix(args[n-2], "-") || strings.Contains(args[n-2], "=")) {
		return args[n-1], args[:n-1]
	}
	return "", args
}

func runFederationJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson federation join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	member := fs.String("kubeconfig", "", "kubeconfig of the member cluster (required; stored in a Secret on the host)")
	hostPath := fs.String("host-kubeconfig", "", "kubeconfig of the host kube-apiserver (required)")
	var o controller.JoinOptions
	fs.StringVar(&o.Region, "region", "", "region of the member (placement spreads over it)")
	fs.StringVar(&o.Zone, "zone", "", "zone of the member")
	fs.StringVar(&o.Provider, "provider", "", "provider of the member")
	labels := fs.String("labels", "", "labels of the Cluster object, k=v,k2=v2")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: keelson federation join NAME --kubeconfig MEMBER --host-kubeconfig HOST [flags]\n\nStores the member's kubeconfig in a Secret in the keelson-federation namespace of the host and\ncreates the Cluster NAME. The kubeconfig must carry its credentials inline.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	name, rest := splitPositional(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if name == "" {
		fmt.Fprintln(stderr, "join: the cluster NAME is required")
		fs.Usage()
		return errUsage
	}
	o.Name = name
	if *member == "" {
		return errors.New("join: --kubeconfig (the member's kubeconfig) is required")
	}
	// Inline certificate, key and token files so the Secret is
	// self-contained.
	mcfg, err := clientcmd.LoadFromFile(*member)
	if err != nil {
		return fmt.Errorf("reading member kubeconfig: %w", err)
	}
	if err := clientcmdapi.FlattenConfig(mcfg); err != nil {
		return fmt.Errorf("inlining files of the member kubeconfig: %w", err)
	}
	if o.Kubeconfig, err = clientcmd.Write(*mcfg); err != nil {
		return fmt.Errorf("encoding member kubeconfig: %w", err)
	}
	if *labels != "" {
		o.Labels = map[string]string{}
		for _, kv := range strings.Split(*labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("join: bad label %q, want k=v", kv)
			}
			o.Labels[k] = v
		}
	}
	host, err := hostConfig(*hostPath, "--host-kubeconfig")
	if err != nil {
		return err
	}
	if err := controller.Join(ctx, host, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cluster %s joined\n", name)
	return nil
}

func runFederationUnjoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson federation unjoin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostPath := fs.String("host-kubeconfig", "", "kubeconfig of the host kube-apiserver (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: keelson federation unjoin NAME --host-kubeconfig HOST\n\nDeletes the Cluster and its kubeconfig Secret. Objects in the member stay (orphaned).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	name, rest := splitPositional(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if name == "" {
		fmt.Fprintln(stderr, "unjoin: the cluster NAME is required")
		return errUsage
	}
	host, err := hostConfig(*hostPath, "--host-kubeconfig")
	if err != nil {
		return err
	}
	if err := controller.Unjoin(ctx, host, name); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cluster %s unjoined; its objects are left in place\n", name)
	return nil
}

func runFederationExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson federation explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostPath := fs.String("host-kubeconfig", "", "kubeconfig of the host kube-apiserver (required)")
	kind := fs.String("kind", "Deployment", "kind of the object, optionally Kind.group (e.g. Deployment, Widget.example.com)")
	apiVersion := fs.String("api-version", "", "apiVersion of the object (default: the preferred version)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: keelson federation explain [NAMESPACE/]NAME --kind KIND --host-kubeconfig HOST\n\nPrints the policy that selects the object and, per cluster, whether it is chosen and why.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	ref, rest := splitPositional(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if ref == "" {
		fmt.Fprintln(stderr, "explain: NAMESPACE/NAME is required")
		return errUsage
	}
	o := controller.ExplainOptions{Kind: *kind, APIVersion: *apiVersion}
	if ns, n, ok := strings.Cut(ref, "/"); ok {
		o.Namespace, o.Name = ns, n
	} else {
		o.Name = ref
	}
	host, err := hostConfig(*hostPath, "--host-kubeconfig")
	if err != nil {
		return err
	}
	return controller.Explain(ctx, host, o, stdout)
}

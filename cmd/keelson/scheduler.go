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
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	_ "github.com/keelson-dev/keelson/internal/plugin/all"
	"github.com/keelson-dev/keelson/internal/scheduler"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
)

func runScheduler(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keelson scheduler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to schedule for (required unless --in-cluster)")
	inCluster := fs.Bool("in-cluster", false, "running in a pod: use its service account instead of --kubeconfig (see deploy/scheduler)")
	configPath := fs.String("config", "", "SchedulerConfiguration file (apiVersion keelson.dev/v1alpha1); default: one profile \"keelson\" with every plugin")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and /healthz here, overriding the config (default :10261; \"off\" disables)")
	instanceID := fs.String("instance-id", "", "name of this instance in node claims (default: host name and pid)")
	single := fs.Bool("single-instance", false, "skip the per-node claim ledger: only safe when this is the only keelson scheduler")
	leaderElect := fs.Bool("leader-elect", false, "run only while holding a coordination.k8s.io Lease, so one instance schedules at a time (off by default: instances run side by side)")
	leaseName := fs.String("leader-elect-lease", "keelson-scheduler", "name of the leader election Lease")
	leaseNamespace := fs.String("leader-elect-namespace", "kube-system", "namespace of the leader election Lease")
	printCRD := fs.Bool("print-crd", false, "print the PodGroup CustomResourceDefinition (gang scheduling) and exit")
	verbose := fs.Bool("v", false, "log at debug level")
	profiling := fs.Bool("profiling", false, "also serve Go's /debug/pprof on the metrics address (off by default: the address is not authenticated)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: keelson scheduler --kubeconfig FILE | --in-cluster [--config FILE] [flags]

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
	if *printCRD {
		_, err := stdout.Write(gang.CRD)
		return err
	}
	if (*kubeconfig == "") == !*inCluster {
		fmt.Fprintln(stderr, "exactly one of --kubeconfig and --in-cluster is required")
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
		cfg.MultiInstance.ShareFraction = 0
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Plugins log through the default logger.
	slog.SetDefault(logger)

	var rest *restclient.Config
	var err error
	if *inCluster {
		if rest, err = restclient.InClusterConfig(); err != nil {
			return fmt.Errorf("loading in-cluster config: %w", err)
		}
	} else if rest, err = clientcmd.BuildConfigFromFlags("", *kubeconfig); err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	rest.QPS, rest.Burst = cfg.ClientQPS, cfg.ClientBurst
	// Built-in resources in the configured encoding (protobuf unless
	// told otherwise), JSON accepted too; the dynamic client below keeps
	// JSON for custom resources.
	rest.ContentType = cfg.ClientContentType
	rest.AcceptContentTypes = cfg.ClientContentType
	if cfg.ClientContentType != scheduler.ContentTypeJSON {
		rest.AcceptContentTypes += "," + scheduler.ContentTypeJSON
	}
	rest.UserAgent = "keelson-scheduler/" + Version
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dyn, err := dynamic.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building dynamic client: %w", err)
	}
	// Membership renewals (and leader election) get their own rate
	// limiter, so a backlog of bindings never delays them past the Lease.
	leaseRest := restclient.CopyConfig(rest)
	leaseRest.QPS, leaseRest.Burst = 20, 40
	leaseClient, err := kubernetes.NewForConfig(leaseRest)
	if err != nil {
		return fmt.Errorf("building lease client: %w", err)
	}
	// Events get a client of their own with the same limits, as
	// kube-scheduler's event client: one event per binding must not halve
	// the rate at which a backlog is bound.
	eventClient, err := kubernetes.NewForConfig(restclient.CopyConfig(rest))
	if err != nil {
		return fmt.Errorf("building event client: %w", err)
	}
	s, err := scheduler.New(cfg, scheduler.Options{Client: client, EventClient: eventClient, MembershipClient: leaseClient, Dynamic: dyn, Registerer: reg, Logger: logger})
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
		if *profiling {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
		logger.Info("serving metrics", "addr", ln.Addr().String())
	}
	if !*leaderElect {
		return s.Start(ctx)
	}
	return runElected(ctx, leaseClient, *leaseNamespace, *leaseName, cfg.MultiInstance.InstanceID, logger, s.Start)
}

// runElected runs start while this process holds the Lease; losing it
// ends start's context and returns an error (the process should exit and
// be restarted, as kube-scheduler does).
func runElected(ctx context.Context, client kubernetes.Interface, ns, name, id string, logger *slog.Logger, start func(context.Context) error) error {
	if id == "" {
		host, _ := os.Hostname()
		id = host + "-" + strconv.Itoa(os.Getpid())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	lost := false
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				logger.Info("leading", "lease", ns+"/"+name, "identity", id)
				runErr = start(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
				cancel()
			},
		},
	})
	if lost {
		return errors.New("lost leader election lease")
	}
	return runErr
}

package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keelson-dev/keelson/internal/federation/controller"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// HostName is the subdirectory of the state directory that holds the
// federation host with --clusters.
const HostName = "host"

// hostControllers are the only controllers the federation host runs: it
// holds workloads as specifications, never runs them, but namespaces must
// still finish deleting and owned objects be collected.
var hostControllers = []string{"namespace", "garbagecollector"}

// federationHealthInterval is how often the control plane `keelson up`
// runs probes its members: short, so that a stopped member shows quickly.
const federationHealthInterval = 2 * time.Second

// MemberName is the name (Cluster object, subdirectory) of member i,
// counted from 1.
func MemberName(i int) string { return "member-" + strconv.Itoa(i) }

// validateClusters checks the --clusters combination.
func (c Config) validateClusters() error {
	if c.Clusters < 0 {
		return fmt.Errorf("clusters must not be negative, got %d", c.Clusters)
	}
	if c.Clusters > 0 && (c.Backend != "" || c.StoreReplicas > 1) {
		return errors.New("--clusters gives every cluster its own embedded store; it cannot be combined with --backend or --store-replicas")
	}
	return nil
}

// federated is what runFederated started.
type federated struct {
	host    *testenv.Env
	members []*testenv.Env
	metrics string // URL of the control plane's /metrics
	logPath string
}

func (f *federated) close(log *slog.Logger) {
	for _, e := range append(f.members, f.host) {
		if e == nil {
			continue
		}
		if err := e.Close(); err != nil {
			log.Warn("stopping", "dir", e.Dir, "err", err)
		}
	}
}

// runFederated starts the host, cfg.Clusters members and the federation
// control plane, joins the members, prints the kubeconfigs and blocks
// like Run.
func runFederated(ctx context.Context, cfg Config, binDir, exe, stateDir string, out io.Writer, log *slog.Logger) error {
	log.Info("starting a federation", "members", cfg.Clusters, "nodes_per_member", cfg.Nodes, "state_dir", stateDir, "bin", binDir)
	f := &federated{members: make([]*testenv.Env, cfg.Clusters)}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := startFederated(runCtx, cfg, binDir, exe, stateDir, f, log)
	if err != nil {
		cancel()
		f.close(log)
		if ctx.Err() != nil {
			log.Info("interrupted while starting; stopped")
			return nil
		}
		return err
	}
	printFederation(out, cfg, f)

	// The first component to exit on its own stops everything.
	exited := make(chan error, len(f.members)+1)
	for _, e := range append([]*testenv.Env{f.host}, f.members...) {
		go func() { exited <- e.Wait(runCtx) }()
	}
	var waitErr error
	select {
	case <-ctx.Done():
	case waitErr = <-exited:
	}
	if waitErr != nil {
		log.Error("component failed; stopping the federation", "err", waitErr)
	} else {
		log.Info("stopping the federation")
	}
	cancel()
	f.close(log)
	if waitErr != nil {
		return waitErr
	}
	log.Info("stopped; state kept", "state_dir", stateDir)
	return nil
}

// startFederated fills f: host and members in parallel, then the control
// plane, then the joins.
func startFederated(ctx context.Context, cfg Config, binDir, exe, stateDir string, f *federated, log *slog.Logger) error {
	var wg sync.WaitGroup
	errs := make([]error, cfg.Clusters+1)
	wg.Go(func() {
		e, err := testenv.New(ctx, testenv.Options{
			Store:             testenv.StoreKind(cfg.Store),
			ControllerManager: true,
			Controllers:       hostControllers,
			BinDir:            binDir,
			KeelsonBinary:     exe,
			Dir:               filepath.Join(stateDir, HostName),
			Logger:            log.With("cluster", HostName),
		})
		f.host = e
		if err != nil {
			errs[0] = fmt.Errorf("starting the host (logs in %s): %w", filepath.Join(stateDir, HostName, "logs"), err)
		}
	})
	for i := range cfg.Clusters {
		name := MemberName(i + 1)
		wg.Go(func() {
			dir := filepath.Join(stateDir, name)
			mlog := log.With("cluster", name)
			e, err := testenv.New(ctx, testenv.Options{
				Store:             testenv.StoreKind(cfg.Store),
				ControllerManager: true,
				Scheduler:         cfg.Scheduler == SchedulerKube,
				KwokNodes:         cfg.Nodes,
				BinDir:            binDir,
				KeelsonBinary:     exe,
				Dir:               dir,
				Logger:            mlog,
			})
			f.members[i] = e
			if err == nil && cfg.Scheduler == SchedulerKeelson {
				err = startKeelsonScheduler(ctx, e, exe, binDir, mlog)
			}
			if err != nil {
				errs[i+1] = fmt.Errorf("starting %s (logs in %s): %w", name, filepath.Join(dir, "logs"), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return startControlPlane(ctx, cfg, stateDir, f, log)
}

// startControlPlane runs the federation controller in this process
// (logging to logs/federation.log, metrics on a free port) and joins
// every member.
func startControlPlane(ctx context.Context, cfg Config, stateDir string, f *federated, log *slog.Logger) error {
	logDir := filepath.Join(stateDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("creating log directory: %w", err)
	}
	f.logPath = filepath.Join(logDir, "federation.log")
	lf, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening federation log: %w", err)
	}
	context.AfterFunc(ctx, func() { lf.Close() })
	reg := prometheus.NewRegistry()
	ccfg := controller.Default()
	ccfg.Host = f.host.Config
	ccfg.HealthInterval = federationHealthInterval
	ccfg.Registerer = reg
	ccfg.Logger = slog.New(slog.NewTextHandler(lf, nil))
	c, err := controller.New(ccfg)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("starting the federation control plane (log %s): %w", f.logPath, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for federation metrics: %w", err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	f.metrics = "http://" + ln.Addr().String() + "/metrics"
	log.Info("federation control plane started", "metrics", f.metrics, "log", f.logPath)

	for i, m := range f.members {
		kc, err := os.ReadFile(m.Kubeconfig)
		if err != nil {
			return fmt.Errorf("reading the kubeconfig of %s: %w", MemberName(i+1), err)
		}
		if err := controller.Join(ctx, f.host.Config, controller.JoinOptions{Name: MemberName(i + 1), Kubeconfig: kc}); err != nil {
			return fmt.Errorf("joining %s: %w", MemberName(i+1), err)
		}
		log.Info("member joined", "cluster", MemberName(i+1))
	}
	return nil
}

// examplePolicy is the PropagationPolicy the banner suggests.
const examplePolicy = `apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: default}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement:
    replicaScheduling: {type: Divided}`

func printFederation(out io.Writer, cfg Config, f *federated) {
	var members strings.Builder
	for i, m := range f.members {
		fmt.Fprintf(&members, "  %-10s %s   (%s)\n", MemberName(i+1), m.Kubeconfig, m.APIServers[0].URL)
	}
	fmt.Fprintf(out, `
Keelson federation is up: a host and %d member clusters, each on its own %s store.
The host only holds objects; each member runs kube-apiserver, kube-controller-manager,
%s and %d kwok nodes. The federation control plane has joined every member.

Host (create workloads and policies here):
  export KUBECONFIG=%s
  kubectl get clusters.federation.keelson.dev
  kubectl create deployment web --image=nginx --replicas=4
  kubectl apply -f - <<'EOF'
%s
EOF
  kubectl rollout status deployment/web

Member kubeconfigs:
%s
Host kube-apiserver: %s
Federation control plane: metrics %s, log %s
Component logs: <state-dir>/<cluster>/logs
Press Ctrl-C to stop.
`, len(f.members), cfg.Store, schedulerComponent(cfg.Scheduler), cfg.Nodes, f.host.Kubeconfig, indent(examplePolicy, "  "),
		members.String(), f.host.APIServers[0].URL, f.metrics, f.logPath)
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// DefaultStateDir is where state goes unless Config.StateDir says
// otherwise; if it cannot be created, $TMPDIR/keelson-up is used.
const DefaultStateDir = ".keelson-up"

// Config is the configuration of `keelson up`.
type Config struct {
	// StateDir holds certificates, kubeconfig, store data and component
	// logs. Data in it is reused by the next run.
	StateDir string
	// Reset removes StateDir before starting.
	Reset bool
	// Nodes is the number of simulated (kwok) nodes.
	Nodes int
	// Store is "keelson" or "etcd" (etcd for debugging and comparison).
	Store string
	// Backend is a database URL (postgres://…, mysql://…) the keelson
	// store instances keep their data in; empty: the embedded engine in
	// StateDir. Never logged with its password.
	Backend string
	// StoreReplicas is the number of keelson store instances; more than
	// one needs Backend. kube-apiserver lists all of them in
	// --etcd-servers.
	StoreReplicas int
	// BinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// kwok and etcd. Empty: the directory of the keelson executable, its
	// bin/ subdirectory, or bin/ in the repository around the working
	// directory, whichever has kube-apiserver.
	BinDir string
	// Executable is the keelson binary run as `keelson store`; empty: this
	// process's executable.
	Executable string
	// Scheduler is SchedulerKeelson (keelson scheduler, the default) or
	// SchedulerKube (kube-scheduler); see scheduler.go.
	Scheduler string
	// Clusters, if above 0, starts a federation instead of one cluster:
	// a host (kube-apiserver on its own store, no workloads), Clusters
	// member clusters (each with its own store, kube-apiserver,
	// kube-controller-manager, scheduler and Nodes kwok nodes), and the
	// federation control plane, which joins every member.
	Clusters int
}

// Default returns the default configuration.
func Default() Config {
	return Config{StateDir: DefaultStateDir, Nodes: 10, Store: string(testenv.StoreKeelson), StoreReplicas: 1, Scheduler: SchedulerKeelson}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.StateDir == "" {
		return errors.New("state directory must not be empty")
	}
	if c.Nodes < 0 {
		return fmt.Errorf("nodes must not be negative, got %d", c.Nodes)
	}
	if _, err := testenv.ParseStoreKind(c.Store); err != nil {
		return err
	}
	if err := c.validateBackend(); err != nil {
		return err
	}
	if err := c.validateClusters(); err != nil {
		return err
	}
	return validateScheduler(c.Scheduler)
}

// validateBackend checks Backend and StoreReplicas.
func (c Config) validateBackend() error {
	if c.StoreReplicas < 1 {
		return fmt.Errorf("store replicas must be at least 1, got %d", c.StoreReplicas)
	}
	if c.Backend != "" {
		if c.Store != string(testenv.StoreKeelson) {
			return fmt.Errorf("a database backend needs store %q, not %q", testenv.StoreKeelson, c.Store)
		}
		if !strings.HasPrefix(c.Backend, "postgres://") && !strings.HasPrefix(c.Backend, "postgresql://") && !strings.HasPrefix(c.Backend, "mysql://") {
			return fmt.Errorf("backend %s: want a postgres:// or mysql:// url", sqlcommon.RedactURL(c.Backend))
		}
	}
	if c.StoreReplicas > 1 && c.Backend == "" {
		return fmt.Errorf("%d store replicas need a database backend that they share (--backend postgres://… or mysql://…)", c.StoreReplicas)
	}
	return nil
}

// storeDescription says what runs as the store, for the log and the
// banner; it never shows a password.
func (c Config) storeDescription() string {
	if c.Backend == "" {
		return c.Store + " store"
	}
	n := "1 keelson store instance"
	if c.StoreReplicas > 1 {
		n = fmt.Sprintf("%d keelson store instances", c.StoreReplicas)
	}
	return n + " on " + sqlcommon.RedactURL(c.Backend)
}

// Run starts the cluster, prints how to use it to out, and blocks until ctx
// is cancelled (then stops everything and returns nil) or a component exits
// on its own (then stops the rest and returns the error).
func Run(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the keelson executable: %w", err)
		}
	}
	binDir, err := findBinDir(cfg.BinDir, exe)
	if err != nil {
		return err
	}
	stateDir, err := prepareStateDir(cfg, log)
	if err != nil {
		return err
	}
	if cfg.Clusters > 0 {
		return runFederated(ctx, cfg, binDir, exe, stateDir, out, log)
	}
	store := testenv.StoreKind(cfg.Store)
	log.Info("starting cluster", "store", cfg.storeDescription(), "nodes", cfg.Nodes, "state_dir", stateDir, "bin", binDir,
		"logs", filepath.Join(stateDir, "logs"))

	env, err := testenv.New(ctx, testenv.Options{
		Store:             store,
		Backend:           cfg.Backend,
		StoreReplicas:     cfg.StoreReplicas,
		APIServerStores:   testenv.StoresAll,
		ControllerManager: true,
		Scheduler:         cfg.Scheduler == SchedulerKube,
		KwokNodes:         cfg.Nodes,
		BinDir:            binDir,
		KeelsonBinary:     exe,
		Dir:               stateDir,
		Logger:            log,
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while starting; stopped")
			return nil
		}
		return fmt.Errorf("starting cluster (component logs in %s): %w", filepath.Join(stateDir, "logs"), err)
	}
	if cfg.Scheduler == SchedulerKeelson {
		if err := startKeelsonScheduler(ctx, env, exe, binDir, log); err != nil {
			_ = env.Close()
			return fmt.Errorf("starting keelson scheduler (logs in %s): %w", env.LogDir, err)
		}
	}

	fmt.Fprintf(out, `
Keelson cluster is up: %s, kube-apiserver, kube-controller-manager, %s, %d kwok nodes.

  export KUBECONFIG=%s
  kubectl get nodes
  kubectl create deployment web --image=nginx --replicas=3

kube-apiserver: %s   store: %s
Component logs: %s
Press Ctrl-C to stop.
`, cfg.storeDescription(), schedulerComponent(cfg.Scheduler), cfg.Nodes, env.Kubeconfig, env.APIServers[0].URL, strings.Join(env.StoreEndpoints(), ","), env.LogDir)

	waitErr := env.Wait(ctx)
	if waitErr != nil {
		log.Error("component failed; stopping the cluster", "err", waitErr)
	} else {
		log.Info("stopping the cluster")
	}
	if err := env.Close(); err != nil {
		log.Warn("stopping", "err", err)
	}
	if waitErr != nil {
		return waitErr
	}
	log.Info("stopped; state kept", "state_dir", stateDir)
	return nil
}

// findBinDir returns dir if set, else the first candidate directory that
// holds kube-apiserver.
func findBinDir(dir, exe string) (string, error) {
	if dir != "" {
		if _, err := testenv.LookBinary(dir, testenv.BinKubeAPIServer); err != nil {
			return "", err
		}
		return filepath.Abs(dir)
	}
	var candidates []string
	if exe != "" {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		exeDir := filepath.Dir(exe)
		candidates = append(candidates, exeDir, filepath.Join(exeDir, "bin"))
	}
	if wd, err := os.Getwd(); err == nil {
		if root, err := testenv.RepoRoot(wd); err == nil {
			candidates = append(candidates, filepath.Join(root, "bin"))
		}
	}
	for _, c := range candidates {
		if _, err := testenv.LookBinary(c, testenv.BinKubeAPIServer); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s: run `make tools` in the keelson repository (or set %s or --bin to the directory holding it)",
		testenv.BinKubeAPIServer, strings.Join(candidates, ", "), testenv.EnvBinDir)
}

// prepareStateDir creates (after Reset, empties) the state directory. The
// default directory falls back to $TMPDIR/keelson-up if it cannot be
// created.
func prepareStateDir(cfg Config, log *slog.Logger) (string, error) {
	dirs := []string{cfg.StateDir}
	if cfg.StateDir == DefaultStateDir {
		dirs = append(dirs, filepath.Join(os.TempDir(), "keelson-up"))
	}
	var errs []error
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cfg.Reset {
			if err := os.RemoveAll(abs); err != nil {
				errs = append(errs, fmt.Errorf("resetting %s: %w", abs, err))
				continue
			}
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			errs = append(errs, fmt.Errorf("creating state directory: %w", err))
			log.Warn("cannot use state directory", "dir", abs, "err", err)
			continue
		}
		return abs, nil
	}
	return "", errors.Join(errs...)
}

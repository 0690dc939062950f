package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options says what to start. The zero value starts keelson store and one
// kube-apiserver.
type Options struct {
	// Store is the store implementation; default StoreKeelson.
	Store StoreKind
	// Backend is a database URL (postgres://…, mysql://…) that every
	// keelson store instance is started with (--backend). Empty: the
	// embedded engine, with its files in Dir. Only with StoreKeelson.
	Backend string
	// StoreReplicas is the number of keelson store instances, each a
	// process on its own port; default 1. More than one needs Backend:
	// the instances share its database (high availability).
	StoreReplicas int
	// APIServerStores says which store instances each kube-apiserver's
	// --etcd-servers lists; default StoresAll.
	APIServerStores StoreWiring
	// StoreOnly starts the store instances only: no kube-apiserver and
	// nothing that needs one (ControllerManager, Scheduler and KwokNodes
	// must be unset). Env.Config and Env.Kubeconfig stay empty.
	StoreOnly bool
	// APIServers is the number of kube-apiservers on the store; default 1.
	APIServers int
	// ControllerManager starts kube-controller-manager (all default
	// controllers, leader election off) against the first apiserver.
	ControllerManager bool
	// Controllers is kube-controller-manager's --controllers list; empty
	// means every default controller ("*"). A federation host, which runs
	// no workloads, uses only the namespace and garbage collector ones.
	Controllers []string
	// Scheduler starts kube-scheduler against the first apiserver.
	Scheduler bool
	// KwokNodes, if > 0, starts kwok and creates that many simulated nodes
	// (named by KwokNodeName), then waits until they are Ready.
	KwokNodes int

	// BinDir holds the binaries; default BinDir().
	BinDir string
	// KeelsonBinary is the binary run as `keelson store`; default
	// BinDir/keelson.
	KeelsonBinary string
	// Dir holds certificates, kubeconfigs, store data and logs. Default: a
	// new temporary directory. Certificates and store data found in it are
	// reused.
	Dir string
	// Logger receives progress; default slog.Default() (New) or the test's
	// output (Start).
	Logger *slog.Logger

	// Extra command-line flags, appended to the ones testenv sets.
	APIServerArgs         []string
	ControllerManagerArgs []string
	SchedulerArgs         []string
}

// StoreWiring says which store instances a kube-apiserver talks to.
type StoreWiring string

const (
	// StoresAll lists every store instance in each kube-apiserver's
	// --etcd-servers; the etcd client spreads requests over them and
	// fails over when one is down.
	StoresAll StoreWiring = ""
	// StoresSpread gives kube-apiserver i only store instance
	// i mod StoreReplicas, so that two apiservers use different instances.
	StoresSpread StoreWiring = "spread"
)

// Env is a running control plane.
type Env struct {
	// Dir is the environment's directory (see Options.Dir).
	Dir string
	// LogDir holds one log file per component.
	LogDir string
	// Store is the running store: Stores[0].
	Store *Store
	// Stores are the store instances (Options.StoreReplicas). Kill,
	// Start and Restart one of them to fail a replica.
	Stores []*Store
	// APIServers are the running kube-apiservers.
	APIServers []*APIServer
	// Config is an admin client configuration for APIServers[0] (nil
	// with Options.StoreOnly).
	Config *rest.Config
	// Kubeconfig is an admin kubeconfig file for APIServers[0] (empty
	// with Options.StoreOnly).
	Kubeconfig string

	opts   Options
	binDir string
	pki    *pki
	log    *slog.Logger
	exitCh chan error

	mu    sync.Mutex
	procs []*process // everything but the store, in start order

	closeOnce sync.Once
	closeErr  error
}

// New starts the environment described by opts and waits until every part
// is ready. On error, whatever was started is stopped again. The caller
// stops the environment with Close; Dir is left in place.
func New(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = BinDir(); err != nil {
			return nil, err
		}
	}
	storeBin, err := checkBinaries(binDir, opts)
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "keelson-testenv-"); err != nil {
			return nil, fmt.Errorf("creating environment directory: %w", err)
		}
	}
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return nil, fmt.Errorf("resolving environment directory: %w", err)
	}
	e := &Env{
		Dir:    opts.Dir,
		LogDir: filepath.Join(opts.Dir, "logs"),
		opts:   opts,
		binDir: binDir,
		log:    opts.Logger,
		exitCh: make(chan error, 1),
	}
	if err := os.MkdirAll(e.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log directory: %w", err)
	}
	if e.pki, err = ensurePKI(filepath.Join(e.Dir, "pki")); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()

	// Instances on one database start one after another: the first
	// creates the schema.
	for i := range opts.StoreReplicas {
		s := e.newStore(i, storeBin)
		e.Stores = append(e.Stores, s)
		if err := s.startFirst(ctx); err != nil {
			return nil, err
		}
	}
	e.Store = e.Stores[0]
	if opts.StoreOnly {
		return e, nil
	}
	for i := range opts.APIServers {
		a, err := e.startAPIServer(ctx, i)
		if err != nil {
			return nil, err
		}
		e.APIServers = append(e.APIServers, a)
		e.addProc(a.proc)
	}
	e.Config = rest.CopyConfig(e.APIServers[0].Config)
	e.Kubeconfig = e.APIServers[0].Kubeconfig
	if opts.ControllerManager {
		p, err := e.startControllerManager(ctx)
		if err != nil {
			return nil, err
		}
		e.addProc(p)
	}
	if opts.Scheduler {
		p, err := e.startScheduler(ctx)
		if err != nil {
			return nil, err
		}
		e.addProc(p)
	}
	if opts.KwokNodes > 0 {
		p, err := e.startKwok(ctx)
		if p != nil {
			e.addProc(p)
		}
		if err != nil {
			return nil, err
		}
	}
	return e, nil
}

// complete fills defaults into opts and checks it.
func (opts *Options) complete() error {
	if opts.Store == "" {
		opts.Store = StoreKeelson
	}
	if _, err := ParseStoreKind(string(opts.Store)); err != nil {
		return err
	}
	if opts.StoreReplicas < 0 {
		return fmt.Errorf("StoreReplicas must not be negative, got %d", opts.StoreReplicas)
	}
	if opts.StoreReplicas == 0 {
		opts.StoreReplicas = 1
	}
	if opts.Backend != "" && opts.Store != StoreKeelson {
		return fmt.Errorf("a database backend needs store %q, not %q", StoreKeelson, opts.Store)
	}
	if opts.StoreReplicas > 1 && opts.Backend == "" {
		return fmt.Errorf("%d store replicas need a database backend that they share", opts.StoreReplicas)
	}
	switch opts.APIServerStores {
	case StoresAll, StoresSpread:
	default:
		return fmt.Errorf("unknown APIServerStores %q (want %q or %q)", opts.APIServerStores, StoresAll, StoresSpread)
	}
	if opts.StoreOnly {
		if opts.ControllerManager || opts.Scheduler || opts.KwokNodes != 0 || opts.APIServers != 0 {
			return errors.New("StoreOnly excludes APIServers, ControllerManager, Scheduler and KwokNodes")
		}
		return nil
	}
	if opts.APIServers <= 0 {
		opts.APIServers = 1
	}
	if opts.KwokNodes < 0 {
		return fmt.Errorf("KwokNodes must not be negative, got %d", opts.KwokNodes)
	}
	return nil
}

// newStore describes store instance i (not started).
func (e *Env) newStore(i int, bin string) *Store {
	base := "store-" + string(e.opts.Store)
	name := "store"
	if e.opts.StoreReplicas > 1 {
		base += "-" + strconv.Itoa(i)
		name += "-" + strconv.Itoa(i)
	}
	s := &Store{
		Kind:    e.opts.Store,
		Index:   i,
		LogPath: filepath.Join(e.LogDir, base+".log"),
		name:    name,
		backend: e.opts.Backend,
		bin:     bin,
		log:     e.log,
		onExit:  e.onExit,
	}
	if e.opts.Backend == "" {
		s.DataDir = filepath.Join(e.Dir, base)
	}
	return s
}

// StoreEndpoints returns the client URL of every store instance.
func (e *Env) StoreEndpoints() []string {
	out := make([]string, len(e.Stores))
	for i, s := range e.Stores {
		out[i] = s.Endpoint
	}
	return out
}

// etcdServers is the --etcd-servers value of kube-apiserver idx.
func (e *Env) etcdServers(idx int) string {
	if e.opts.APIServerStores == StoresSpread {
		return e.Stores[idx%len(e.Stores)].Endpoint
	}
	return strings.Join(e.StoreEndpoints(), ",")
}

// checkBinaries looks up every binary opts needs, so that a missing one is
// reported before anything starts. It returns the store's binary.
func checkBinaries(binDir string, opts Options) (string, error) {
	var storeBin string
	var errs []error
	switch opts.Store {
	case StoreEtcd:
		p, err := LookBinary(binDir, BinEtcd)
		storeBin = p
		errs = append(errs, err)
	default:
		if opts.KeelsonBinary != "" {
			storeBin = opts.KeelsonBinary
		} else {
			p, err := LookBinary(binDir, BinKeelson)
			storeBin = p
			errs = append(errs, err)
		}
	}
	var need []string
	if !opts.StoreOnly {
		need = append(need, BinKubeAPIServer)
	}
	if opts.ControllerManager {
		need = append(need, BinKubeControllerManager)
	}
	if opts.Scheduler {
		need = append(need, BinKubeScheduler)
	}
	if opts.KwokNodes > 0 {
		need = append(need, BinKwok)
	}
	for _, n := range need {
		_, err := LookBinary(binDir, n)
		errs = append(errs, err)
	}
	return storeBin, errors.Join(errs...)
}

func (e *Env) addProc(p *process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = append(e.procs, p)
}

// onExit reports a component that exited without being stopped.
func (e *Env) onExit(p *process) {
	select {
	case e.exitCh <- p.exitError():
	default:
	}
}

// Wait blocks until ctx ends (returning nil) or a component exits without
// having been stopped (returning an error naming it and its log).
func (e *Env) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.exitCh:
		return err
	}
}

// WaitAPIServersReady polls every apiserver's /readyz until all answer 200,
// for example after the store was restarted.
func (e *Env) WaitAPIServersReady(ctx context.Context) error {
	for _, a := range e.APIServers {
		if err := a.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Clientset returns a clientset for Config.
func (e *Env) Clientset() (*kubernetes.Clientset, error) {
	c, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return nil, fmt.Errorf("creating clientset: %w", err)
	}
	return c, nil
}

// LogFiles returns the log file of every component, sorted.
func (e *Env) LogFiles() []string {
	files, _ := filepath.Glob(filepath.Join(e.LogDir, "*.log"))
	sort.Strings(files)
	return files
}

// Close stops every component, newest first (kwok, scheduler, controller
// manager, apiservers, store): SIGTERM to its process group, SIGKILL after
// a grace period. It does not remove Dir. Close is idempotent.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		procs := slices.Clone(e.procs)
		e.mu.Unlock()
		var errs []error
		for _, p := range slices.Backward(procs) {
			errs = append(errs, p.stop(stopTimeout))
		}
		for _, s := range slices.Backward(e.Stores) {
			errs = append(errs, s.Stop())
		}
		e.closeErr = errors.Join(errs...)
		e.log.Info("environment stopped", "dir", e.Dir)
	})
	return e.closeErr
}

// Start is New for tests: it fails the test (with the reason, e.g. to run
// `make tools`) if the environment cannot start, and registers teardown with
// t.Cleanup. The directory is removed after a passing test; after a failing
// one the tail of every log is printed and the directory is kept.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	ownDir := opts.Dir == ""
	if ownDir {
		dir, err := os.MkdirTemp("", "keelson-testenv-")
		if err != nil {
			t.Fatalf("testenv: creating directory: %v", err)
		}
		opts.Dir = dir
	}
	env, err := New(t.Context(), opts)
	if err != nil {
		if logs, _ := filepath.Glob(filepath.Join(opts.Dir, "logs", "*.log")); len(logs) > 0 {
			dumpLogs(t, filepath.Join(opts.Dir, "logs"))
			t.Logf("testenv: logs and data kept in %s", opts.Dir)
		} else if ownDir {
			_ = os.RemoveAll(opts.Dir)
		}
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		failed := t.Failed()
		if failed {
			dumpLogs(t, env.LogDir)
		}
		if err := env.Close(); err != nil {
			t.Logf("testenv: stopping: %v", err)
		}
		if failed {
			t.Logf("testenv: logs and data kept in %s", env.Dir)
		} else if ownDir {
			_ = os.RemoveAll(env.Dir)
		}
	})
	return env
}

// dumpLogs prints the tail of every log file in dir.
func dumpLogs(t testing.TB, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(files)
	for _, f := range files {
		t.Logf("testenv: ---- last lines of %s ----\n%s", f, tailFile(f, 40))
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// targetSpec is one server configuration under test.
type targetSpec struct {
	Name      string // flag value and report key
	Label     string // shown in tables
	Kind      string // keelson | etcd | kine
	DB        string // "" (own files) | sqlite | postgres | mysql
	Instances int    // SQL targets run two processes on one database: writes to the first, watches on the last
}

var targetSpecs = []targetSpec{
	{Name: "keelson", Label: "keelson (embedded)", Kind: "keelson", Instances: 1},
	{Name: "etcd", Label: "etcd 3.6", Kind: "etcd", Instances: 1},
	{Name: "kine-sqlite", Label: "kine (SQLite, synchronous=FULL)", Kind: "kine", DB: "sqlite", Instances: 1},
	{Name: "kine-sqlite-default", Label: "kine (SQLite, its default synchronous=NORMAL)", Kind: "kine", DB: "sqlite", Instances: 1},
	{Name: "keelson-postgres", Label: "keelson (PostgreSQL, 2 instances)", Kind: "keelson", DB: "postgres", Instances: 2},
	{Name: "kine-postgres", Label: "kine (PostgreSQL, 2 instances)", Kind: "kine", DB: "postgres", Instances: 2},
	{Name: "keelson-mysql", Label: "keelson (MariaDB, 2 instances)", Kind: "keelson", DB: "mysql", Instances: 2},
	{Name: "kine-mysql", Label: "kine (MariaDB, 2 instances)", Kind: "kine", DB: "mysql", Instances: 2},
}

func specByName(name string) (targetSpec, bool) {
	for _, s := range targetSpecs {
		if s.Name == name {
			return s, true
		}
	}
	return targetSpec{}, false
}

func targetNames() []string {
	var n []string
	for _, s := range targetSpecs {
		n = append(n, s.Name)
	}
	return n
}

// kine's own SQLite parameters (pkg/drivers/sqlite DefaultParams in v0.17.5)
// are WAL with synchronous=NORMAL, which does not fsync on commit. The
// benchmark sets synchronous=FULL so that an acknowledged write is on disk,
// as it is for etcd and keelson; kine-sqlite-default keeps NORMAL.
const (
	kineSQLiteFull    = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=FULL&_txlock=immediate&_stmt_cache_size=20&cache=shared"
	kineSQLiteDefault = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&_stmt_cache_size=20&cache=shared"
)

// server is one running process.
type server struct {
	name      string
	cmd       *exec.Cmd
	endpoint  string // host:port of the etcd API
	metrics   string // host:port of the metrics/pprof listener
	logPath   string
	exited    chan struct{}
	waitErr   error
	cpuBefore time.Duration
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// running is a started target: its processes and how to clean up.
type running struct {
	spec    targetSpec
	servers []*server
	cleanup []func()
}

func (r *running) writeEndpoint() string { return r.servers[0].endpoint }
func (r *running) watchEndpoint() string { return r.servers[len(r.servers)-1].endpoint }

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the server binds; startTarget retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// startTarget starts every instance of spec with fresh state under dir and
// returns once each answers a Range. dbURL is the fresh database's URL for
// SQL targets (never logged).
func (b *bencher) startTarget(ctx context.Context, spec targetSpec, dir, dbURL string) (*running, error) {
	r := &running{spec: spec}
	for i := range spec.Instances {
		var lastErr error
		for attempt := range 3 {
			srv, err := b.startInstance(ctx, spec, dir, dbURL, i, attempt)
			if err == nil {
				r.servers = append(r.servers, srv)
				lastErr = nil
				break
			}
			lastErr = err
			if ctx.Err() != nil || errors.Is(err, errNoStart) {
				break
			}
			slog.Warn("server did not start, retrying on other ports", "target", spec.Name, "instance", i, "err", err)
		}
		if lastErr != nil {
			r.stop()
			return nil, lastErr
		}
	}
	return r, nil
}

func (b *bencher) startInstance(ctx context.Context, spec targetSpec, dir, dbURL string, idx, attempt int) (*server, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%d", spec.Name, idx)
	dataDir := filepath.Join(dir, name)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	var args []string
	bin := filepath.Join(b.cfg.BinDir, spec.Kind)
	switch spec.Kind {
	case "keelson":
		args = []string{"store", "--listen", listen, "--metrics-listen", metrics}
		if spec.DB == "" {
			args = append(args, "--data-dir", dataDir)
		} else {
			args = append(args, "--backend", dbURL)
		}
	case "etcd":
		peer, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args = []string{
			"--name", "bench", "--data-dir", dataDir,
			"--listen-client-urls", "http://" + listen, "--advertise-client-urls", "http://" + listen,
			"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "bench=http://" + peer, "--initial-cluster-state", "new",
			"--listen-metrics-urls", "http://" + metrics, "--enable-pprof",
			"--quota-backend-bytes", strconv.FormatInt(16<<30, 10),
			"--log-level", "warn",
		}
	case "kine":
		endpoint := dbURL
		if spec.DB == "sqlite" {
			params := kineSQLiteFull
			if spec.Name == "kine-sqlite-default" {
				params = kineSQLiteDefault
			}
			endpoint = "sqlite://" + filepath.Join(dataDir, "state.db") + "?" + params
		}
		args = []string{"--listen-address", listen, "--endpoint", endpoint, "--metrics-bind-address", metrics}
		if spec.DB == "postgres" || spec.DB == "mysql" {
			// See sqlClientsWhy: the writer instance gets the writers plus
			// 20 (no deadlock, and room on a shared database server), the
			// watching instance a few.
			pool := b.cfg.Sizes.SQLClients + 20
			if idx > 0 {
				pool = 5
			}
			args = append(args, "--datastore-max-open-connections", strconv.Itoa(pool))
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", spec.Kind)
	}

	logPath := filepath.Join(b.logDir, fmt.Sprintf("%s-%d.try%d.log", filepath.Base(dir), idx, attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating server log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%w: %s: %w", errNoStart, spec.Kind, err)
	}
	srv := &server{name: name, cmd: cmd, endpoint: listen, metrics: metrics, logPath: logPath, exited: make(chan struct{})}
	go func() {
		srv.waitErr = cmd.Wait()
		logFile.Close()
		close(srv.exited)
	}()
	slog.Info("started", "server", name, "pid", cmd.Process.Pid, "listen", listen, "metrics", metrics, "log", logPath)
	if err := waitReady(ctx, srv, 90*time.Second); err != nil {
		srv.stop()
		return nil, fmt.Errorf("%s not ready: %w (log %s: %s)", name, err, logPath, tail(logPath, 400))
	}
	return srv, nil
}

// waitReady polls a linearizable Range until it succeeds, the process exits
// or the deadline passes.
func waitReady(ctx context.Context, srv *server, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	cli, err := newClient(srv.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "/bench/readiness-probe")
		rcancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-srv.exited:
			return fmt.Errorf("process exited: %v", srv.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("polling for readiness: %w (last error: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func newClient(endpoints ...string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("creating etcd client: %w", err)
	}
	return cli, nil
}

// stop sends SIGTERM, then SIGKILL after 15 s, and waits for the exit.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		slog.Warn("server ignored SIGTERM, killing", "server", s.name, "pid", s.pid())
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (r *running) stop() {
	for _, s := range r.servers {
		s.stop()
	}
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
	r.cleanup = nil
}

// alive reports an error if any instance has exited.
func (r *running) alive() error {
	for _, s := range r.servers {
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited: %v (log %s: %s)", s.name, s.waitErr, s.logPath, crashSummary(s.logPath))
		default:
		}
	}
	return nil
}

// binaryVersion runs the binary's version command and returns its first line.
func binaryVersion(ctx context.Context, binDir, kind string) string {
	var args []string
	switch kind {
	case "keelson":
		args = []string{"version"}
	default:
		args = []string{"--version"}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, kind), args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// keelsonHasBackendFlag reports whether `keelson store --help` mentions --backend.
func keelsonHasBackendFlag(ctx context.Context, binDir string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, filepath.Join(binDir, "keelson"), "store", "--help").CombinedOutput()
	return bytes.Contains(out, []byte("-backend"))
}

// tail returns the last n bytes of a file, on one line.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastBytes(string(b), n)
}

// crashSummary is the panic of a crashed Go server with its first frame,
// or else the end of its log.
func crashSummary(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	log := string(b)
	for _, marker := range []string{"panic: ", "fatal error: "} {
		i := strings.Index(log, marker)
		if i < 0 {
			continue
		}
		rest := log[i:]
		lines := strings.SplitN(rest, "\n", 8)
		keep := []string{lines[0]}
		for j, l := range lines {
			if strings.HasPrefix(l, "goroutine ") && j+2 < len(lines) {
				keep = append(keep, strings.TrimSpace(lines[j+1]), strings.TrimSpace(lines[j+2]))
				break
			}
		}
		return strings.Join(keep, " | ")
	}
	return lastBytes(log, 400)
}

// lastBytes returns the last n bytes of s with whitespace squeezed.
func lastBytes(s string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return strings.Join(strings.Fields(s), " ")
}

// errNoStart is a server that could not be executed at all (retrying on
// other ports would not help).
var errNoStart = errors.New("cannot start")

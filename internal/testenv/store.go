package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StoreKind selects the store under kube-apiserver.
type StoreKind string

const (
	// StoreKeelson is `keelson store` on its embedded engine.
	StoreKeelson StoreKind = "keelson"
	// StoreEtcd is etcd, with fsync on, for comparison.
	StoreEtcd StoreKind = "etcd"
)

// ParseStoreKind parses "keelson" or "etcd".
func ParseStoreKind(s string) (StoreKind, error) {
	switch k := StoreKind(s); k {
	case StoreKeelson, StoreEtcd:
		return k, nil
	}
	return "", fmt.Errorf("unknown store %q (want %q or %q)", s, StoreKeelson, StoreEtcd)
}

// storeReadyTimeout bounds a store start, including replay of its data.
const storeReadyTimeout = 2 * time.Minute

// Store is one running etcd-API store process (one replica when several
// keelson store instances share a database). Its ports and data directory
// stay the same across Kill, Stop and Start, so kube-apiserver reconnects
// to it.
type Store struct {
	// Kind is the store implementation.
	Kind StoreKind
	// Index is the position in Env.Stores.
	Index int
	// Endpoint is the client URL, http://127.0.0.1:PORT.
	Endpoint string
	// DataDir holds the store's data; empty when the data is in a
	// database (Options.Backend).
	DataDir string
	// LogPath is the file the store's output is appended to.
	LogPath string

	name        string // process name in logs: "store", "store-1", …
	backend     string // database URL (--backend); empty for the embedded engine
	bin         string
	port        int
	peerPort    int // etcd only
	metricsPort int
	log         *slog.Logger
	onExit      func(*process)

	mu   sync.Mutex
	proc *process
}

// args returns the command line for the current ports.
func (s *Store) args() []string {
	host := "127.0.0.1:"
	switch s.Kind {
	case StoreEtcd:
		client := "http://" + host + strconv.Itoa(s.port)
		peer := "http://" + host + strconv.Itoa(s.peerPort)
		return []string{
			"--name=testenv",
			"--data-dir=" + s.DataDir,
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=testenv=" + peer,
			"--listen-metrics-urls=http://" + host + strconv.Itoa(s.metricsPort),
			"--unsafe-no-fsync=false",
			"--log-level=warn",
		}
	default:
		args := []string{
			"store",
			"--listen=" + host + strconv.Itoa(s.port),
			"--metrics-listen=" + host + strconv.Itoa(s.metricsPort),
			"--name=testenv-" + strconv.Itoa(s.Index),
		}
		if s.backend != "" {
			return append(args, "--backend="+s.backend)
		}
		return append(args, "--data-dir="+s.DataDir)
	}
}

// startFirst picks free ports and starts the store, retrying with new ports
// if one was taken in the meantime.
func (s *Store) startFirst(ctx context.Context) error {
	return startRetrying(s.log, s.name, func() error {
		ports, err := freePorts(3)
		if err != nil {
			return err
		}
		s.port, s.peerPort, s.metricsPort = ports[0], ports[1], ports[2]
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		return s.Start(ctx)
	})
}

// Start starts the store on its data directory and ports and waits until it
// answers a Range. It fails if the store is running.
func (s *Store) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return errors.New("store is already running")
	}
	if s.DataDir != "" {
		if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
			return fmt.Errorf("creating store data directory: %w", err)
		}
	}
	started := time.Now()
	p, err := startProcess(s.name, s.bin, s.args(), s.LogPath, s.onExit)
	if err != nil {
		return err
	}
	s.proc = p
	ctx, cancel := context.WithTimeout(ctx, storeReadyTimeout)
	defer cancel()
	if err := waitStoreReady(ctx, p, s.Endpoint); err != nil {
		p.kill()
		if p.addrInUse() {
			return fmt.Errorf("%s: %w: %w", s.name, errAddrInUse, err)
		}
		return fmt.Errorf("%s (%s): %w", s.name, s.Kind, err)
	}
	s.log.Info("store ready", "name", s.name, "kind", s.Kind, "endpoint", s.Endpoint, "pid", p.cmd.Process.Pid,
		"took", time.Since(started).Round(time.Millisecond), "log", s.LogPath)
	return nil
}

// Kill kills the store with SIGKILL (a crash) and waits for it to exit.
func (s *Store) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.log.Info("store killed", "name", s.name, "kind", s.Kind, "signal", "SIGKILL")
	}
}

// Stop stops the store with SIGTERM, killing it if it does not exit in time.
func (s *Store) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	return s.proc.stop(stopTimeout)
}

// Restart stops the store gracefully and starts it again.
func (s *Store) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Running reports whether the store process is running.
func (s *Store) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// waitStoreReady polls the store with a Range until it answers. The gRPC
// client is created only once the port accepts connections: a client whose
// first dial is refused waits out gRPC's reconnect backoff (about a second).
func waitStoreReady(ctx context.Context, p *process, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("parsing store endpoint: %w", err)
	}
	var cli *clientv3.Client
	defer func() {
		if cli != nil {
			cli.Close()
		}
	}()
	return p.waitFor(ctx, "store to answer a Range", 50*time.Millisecond, func(ctx context.Context) error {
		if cli == nil {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				return err
			}
			conn.Close()
			cli, err = clientv3.New(clientv3.Config{
				Endpoints:   []string{endpoint},
				DialTimeout: 2 * time.Second,
				Logger:      zap.NewNop(),
			})
			if err != nil {
				return fmt.Errorf("creating etcd client: %w", err)
			}
		}
		_, err := cli.Get(ctx, "/keelson-testenv/ready")
		return err
	})
}

package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/keelson-dev/keelson/internal/plugin"
	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/cache"
	"github.com/keelson-dev/keelson/internal/store/backend/sqlcommon"
	"github.com/keelson-dev/keelson/internal/store/diag"
)

// Server serves the etcd v3 API on a backend.Backend.
//
// Lifecycle: New validates the Config; Start opens the backend, binds the
// listeners and returns once they accept connections; Close (or the end of
// the context given to Start) stops everything. Serve is Start plus waiting
// for the context and closing.
type Server struct {
	cfg Config
	log *slog.Logger

	be      backend.Backend
	ownsBE  bool
	cache   *cache.Cache // the read cache in front of the engine, or nil
	engine  string
	cluster uint64
	member  uint64

	grpc    *grpc.Server
	lis     net.Listener
	httpSrv *http.Server
	mlis    net.Listener
	tls     bool

	hub    *watchHub
	lessor *lessor
	// compactRev is the newest compaction this instance has seen (its own
	// Compact calls and the reads that report one); watch events at or
	// below it go out without PrevKV, as etcd sends them.
	compactRev atomic.Int64
	metrics    *metrics

	ctx    context.Context // cancelled by Close; ends streams and loops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	started   bool
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithBackend makes the Server use an already opened engine instead of
// opening one from Config.Backend/DataDir. The Server does not close it.
func WithBackend(b backend.Backend) Option {
	return func(s *Server) { s.be = b }
}

// New checks cfg and returns a Server that is not yet started.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.logger().With("component", "store")}
	for _, o := range opts {
		o(s)
	}
	s.cluster = idFor("keelson-cluster/" + cfg.Name)
	s.member = idFor("keelson-member/" + cfg.Name)
	s.metrics = newMetrics(s)
	return s, nil
}

func idFor(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	id := h.Sum64() &^ (1 << 63)
	if id == 0 {
		id = 1
	}
	return id
}

// openBackend opens the engine Config.Backend selects.
func openBackend(cfg Config) (backend.Backend, error) {
	name := engineOf(cfg.Backend)
	if name == "postgresql" {
		name = "postgres"
	}
	info, ok := plugin.Lookup(backend.PluginPrefix + name)
	if !ok {
		return nil, fmt.Errorf("backend %q not compiled in (available: %s)", name, strings.Join(plugin.Names(backend.PluginPrefix), ", "))
	}
	factory, ok := info.Factory.(backend.Factory)
	if !ok {
		return nil, fmt.Errorf("plugin %s has factory %T, not a backend.Factory", info.Name, info.Factory)
	}
	ctx, cancel := context.WithTimeout(context.Background(), backendOpenTimeout)
	defer cancel()
	return factory(ctx, backend.OpenOptions{URL: cfg.Backend, DataDir: cfg.DataDir, Logger: cfg.logger()})
}

// backendOpenTimeout bounds connecting to a database and migrating its schema.
const backendOpenTimeout = time.Minute

// Start opens the backend, binds the listeners and starts serving. It
// returns once both listeners accept connections. Cancelling ctx later
// stops the server, as Close does.
func (s *Server) Start(ctx context.Context) (err error) {
	if s.started {
		return errors.New("server already started")
	}
	s.started = true
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.be == nil {
		be, err := openBackend(s.cfg)
		if err != nil {
			return fmt.Errorf("opening backend: %w", err)
		}
		s.be, s.ownsBE = be, true
	}
	st, err := s.be.Status(ctx)
	if err != nil {
		return fmt.Errorf("reading backend status: %w", err)
	}
	s.engine = st.Engine
	if err := s.startCache(ctx); err != nil {
		return err
	}

	if err := s.bootstrapRevision(ctx); err != nil {
		return fmt.Errorf("initializing revision: %w", err)
	}
	s.lessor = newLessor(s)
	if s.engine == "embedded" {
		// A restarted single-node store restarts every lease's clock, as
		// etcd does.
		if err := s.lessor.refreshAll(ctx); err != nil {
			return fmt.Errorf("refreshing leases: %w", err)
		}
	}
	s.hub = newWatchHub(s.be, s.cfg.WatchRingEvents, s.log)
	if err := s.hub.start(s.ctx, &s.wg); err != nil {
		return fmt.Errorf("starting watch hub: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.lessor.run(s.ctx)
	}()

	gopts, err := s.grpcOptions()
	if err != nil {
		return err
	}
	s.grpc = grpc.NewServer(gopts...)
	pb.RegisterKVServer(s.grpc, &kvServer{s: s})
	pb.RegisterWatchServer(s.grpc, &watchServer{s: s})
	pb.RegisterLeaseServer(s.grpc, &leaseServer{s: s})
	pb.RegisterMaintenanceServer(s.grpc, &maintenanceServer{s: s})
	pb.RegisterClusterServer(s.grpc, &clusterServer{s: s})
	pb.RegisterAuthServer(s.grpc, &authServer{})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, hs)

	s.lis, err = net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	var grpcLis net.Listener = s.lis
	s.httpSrv = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	if !s.tls {
		// Plaintext: the client port also answers /health and /metrics.
		split := newSplitListener(s.lis)
		grpcLis = split.grpc
		s.serveHTTP(split.http)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("grpc server stopped", "err", err)
		}
	}()

	if s.cfg.MetricsListen != "" {
		s.mlis, err = net.Listen("tcp", s.cfg.MetricsListen)
		switch {
		case err != nil && s.cfg.MetricsListen == DefaultMetricsListen:
			// Several stores on one machine (tests) would fight over the
			// default port; the client port serves the same endpoints.
			s.log.Warn("metrics listener disabled: default address in use; /metrics and /health are on the client port", "address", s.cfg.MetricsListen, "err", err)
		case err != nil:
			return fmt.Errorf("listening on %s: %w", s.cfg.MetricsListen, err)
		default:
			s.serveHTTP(s.mlis)
		}
	}
	// Stop when the caller's context ends.
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	attrs := []any{"address", s.Addr(), "engine", s.engine, "tls", s.tls}
	if s.engine == "embedded" {
		attrs = append(attrs, "data_dir", s.cfg.DataDir)
	}
	if s.mlis != nil {
		attrs = append(attrs, "metrics_address", s.MetricsAddr())
	}
	s.log.Info("store serving etcd v3 API", attrs...)
	return nil
}

func (s *Server) serveHTTP(l net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
}

// startCache puts the read cache Config.Cache selects in front of the
// engine. On the SQL engines opened from Config.Backend its read barrier
// is one query of the meta row; otherwise an engine View.
func (s *Server) startCache(ctx context.Context) error {
	mode := s.cfg.Cache
	if mode == "" {
		mode = "memory"
		if s.engine == "embedded" {
			mode = "off"
		}
	}
	if mode == "off" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, backendOpenTimeout)
	defer cancel()
	opts := cache.Options{MaxBytes: s.cfg.CacheMaxBytes, Logger: s.cfg.logger(), KeepBackendOpen: !s.ownsBE}
	if s.ownsBE && (s.engine == "postgres" || s.engine == "mysql") {
		m, err := cache.NewSQLMeta(ctx, s.cfg.Backend)
		if err != nil {
			return fmt.Errorf("starting read cache: %w", err)
		}
		opts.Meta = m
	}
	if mode != "memory" {
		r, err := cache.OpenRedis(ctx, mode, s.redisPrefix(), s.cfg.logger())
		if err != nil {
			if opts.Meta != nil {
				opts.Meta.Close()
			}
			return fmt.Errorf("starting read cache: %w", err)
		}
		opts.Redis = r
	}
	c, err := cache.New(ctx, s.be, opts)
	if err != nil {
		return fmt.Errorf("starting read cache: %w", err)
	}
	s.cache, s.be = c, c
	attrs := []any{"max_bytes", s.cfg.CacheMaxBytes}
	if opts.Redis != nil {
		attrs = append(attrs, "redis", cache.RedactRedisURL(mode))
	}
	s.log.Info("read cache enabled", attrs...)
	return nil
}

// redisPrefix is the default Redis key prefix: distinct per database (a
// hash of the backend URL without credentials) so that stores on
// different databases never share entries.
func (s *Server) redisPrefix() string {
	h := fnv.New64a()
	h.Write([]byte(s.engine + "|" + sqlcommon.RedactURL(s.cfg.Backend) + "|" + s.cfg.DataDir))
	return fmt.Sprintf("keelson:%x:", h.Sum64())
}

// bootstrapRevision checks the engine's starting point: every engine
// starts an empty store at revision 1, as etcd does (kube-apiserver rejects
// resource version 0 from storage). It also records the compaction point
// so that watch events below it go out as etcd sends them.
func (s *Server) bootstrapRevision(ctx context.Context) error {
	var rev, compacted int64
	if err := s.be.View(ctx, func(tx backend.ReadTx) error {
		rev, compacted = tx.Revision(), tx.CompactRevision()
		return nil
	}); err != nil {
		return err
	}
	if rev < 1 {
		return fmt.Errorf("engine %s reports revision %d; an empty store must be at revision 1", s.engine, rev)
	}
	s.noteCompaction(compacted)
	return nil
}

// Serve starts the server and blocks until ctx ends, then closes it.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while starting
		}
		return err
	}
	<-ctx.Done()
	return s.Close()
}

// streamWorkers is the number of gRPC stream workers: about as many as
// the unary requests a busy store has waiting for a commit at once.
const streamWorkers = 256

func (s *Server) grpcOptions() ([]grpc.ServerOption, error) {
	cdc, err := newCodec()
	if err != nil {
		return nil, err
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(cdc),
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(1<<31 - 1),
		grpc.MaxConcurrentStreams(1<<32 - 1),
		// etcd's keepalive policy: clients (kube-apiserver pings every
		// 30s) must not be sent GOAWAY for pinging.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(s.metrics.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.metrics.streamInterceptor),
		// Run RPCs on a pool of long-lived goroutines instead of a new one
		// each: a new goroutine's stack grows (is copied) several times on
		// every request, about a tenth of the store's CPU per put under
		// concurrent writes on the SQL engines. When every worker is busy
		// (long Watch streams hold one each) gRPC starts a goroutine as
		// before.
		grpc.NumStreamWorkers(streamWorkers),
	}
	if s.cfg.CertFile != "" {
		tc, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		s.tls = true
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return opts, nil
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading tls key pair: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(s.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate", s.cfg.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Addr is the bound address of the gRPC listener (after Start).
func (s *Server) Addr() string {
	if s.lis == nil {
		return ""
	}
	return s.lis.Addr().String()
}

// MetricsAddr is the bound address of the metrics listener, or "".
func (s *Server) MetricsAddr() string {
	if s.mlis == nil {
		return ""
	}
	return s.mlis.Addr().String()
}

// ClientURL is the URL clients use to reach the gRPC listener.
func (s *Server) ClientURL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Close stops serving and releases the backend if the Server opened it.
//
// Close returns within closeBudget even if something is stuck, so that a
// supervisor's SIGKILL (testenv and keelson up send it 15s after SIGTERM)
// is never needed: in-flight RPCs get up to gracefulStopWait before the
// gRPC server is stopped hard, and every later step that has not ended
// when the budget runs out is abandoned. Anything forced or abandoned is
// logged at error level with a goroutine dump (a file in the data
// directory or the temporary directory) naming what was stuck.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		deadline := time.Now().Add(closeBudget)
		if s.cancel != nil {
			s.cancel() // ends watch and keep-alive streams, loops
		}
		if s.grpc != nil {
			done := make(chan struct{})
			go func() {
				s.grpc.GracefulStop()
				close(done)
			}()
			if !s.waitStep(done, time.Now().Add(gracefulStopWait), "in-flight RPCs to finish; stopping the gRPC server hard") {
				s.grpc.Stop() // closes connections; handlers are left to end on their own
				s.waitStep(done, deadline, "the gRPC server to stop")
			}
		}
		if s.lis != nil {
			s.lis.Close() // also ends the split listener
		}
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), min(time.Until(deadline), time.Second))
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				s.httpSrv.Close()
			}
			cancel()
		}
		if s.mlis != nil {
			s.mlis.Close()
		}
		loops := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(loops)
		}()
		s.waitStep(loops, deadline, "the watch hub, lessor and servers to stop")
		if s.cache != nil && !s.ownsBE {
			s.closeAsync(s.cache.Close, deadline, "the read cache to close") // leaves the caller's engine open
		}
		if s.ownsBE && s.be != nil {
			if err := s.closeAsync(s.be.Close, deadline, "the backend to close"); err != nil {
				s.closeErr = fmt.Errorf("closing backend: %w", err)
			}
		}
		if s.lis != nil {
			s.log.Info("store stopped", "address", s.Addr())
		}
	})
	return s.closeErr
}

// closeBudget bounds Close; gracefulStopWait is the part of it in-flight
// RPCs get to finish.
const (
	closeBudget      = 12 * time.Second
	gracefulStopWait = 5 * time.Second
)

// errCloseTimeout: a step of Close did not finish in time.
var errCloseTimeout = errors.New("did not finish in time; abandoned")

// closeAsync runs closeFn, waiting for it until deadline (and dumping
// goroutines if it takes longer).
func (s *Server) closeAsync(closeFn func() error, deadline time.Time, what string) error {
	done := make(chan struct{})
	var err error
	go func() {
		err = closeFn()
		close(done)
	}()
	if !s.waitStep(done, deadline, what) {
		return errCloseTimeout
	}
	return err
}

// waitStep waits until deadline for done. If done is not closed by then
// it logs what it was waiting for and where a goroutine dump was written,
// and returns false.
func (s *Server) waitStep(done <-chan struct{}, deadline time.Time, what string) bool {
	t := time.NewTimer(max(time.Until(deadline), 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	path, err := diag.DumpGoroutines(s.cfg.DataDir, os.Stderr)
	s.log.Error("store close: gave up waiting for "+what, "goroutine_dump", path, "dump_err", err)
	return false
}

// currentRevision reads the store's current revision.
func (s *Server) currentRevision(ctx context.Context) int64 {
	var rev int64
	_ = s.be.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		return nil
	})
	return rev
}

// fillHeader completes a response header as etcd's: cluster and member
// IDs, raft term 1 and, if the operation did not set it, the current
// revision.
func (s *Server) fillHeader(h *pb.ResponseHeader) {
	h.ClusterId = s.cluster
	h.MemberId = s.member
	h.RaftTerm = 1
	if h.Revision == 0 {
		h.Revision = s.currentRevision(s.ctx)
	}
}

func (s *Server) header(rev int64) *pb.ResponseHeader {
	h := &pb.ResponseHeader{Revision: rev}
	s.fillHeader(h)
	return h
}

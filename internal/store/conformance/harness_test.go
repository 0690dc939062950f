package conformance

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/grpclog"

	"k8s.io/apimachinery/pkg/api/apitesting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/apis/example"
	examplev1 "k8s.io/apiserver/pkg/apis/example/v1"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/etcd3"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"
	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// This file is the harness: what upstream's etcd3 store_test.go calls
// testSetup, withDefaults and friends, rebuilt on the public etcd3 API and an
// endpoint handed out by a serverFunc.

var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

// defaultTestPrefix is what the test transformer prepends to every stored value.
const defaultTestPrefix = "test!"

// maxLimit mirrors etcd3's unexported maxLimit: the largest page the store
// asks etcd for while paging through a list.
const maxLimit = 10000

func init() {
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(example.AddToScheme(scheme))
	utilruntime.Must(examplev1.AddToScheme(scheme))

	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
}

func TestMain(m *testing.M) {
	// The etcd3 store logs every watch start/stop and decode problem through
	// klog; the suite provokes many of those on purpose.
	klog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// serverOptions are the server-side settings some upstream tests change.
type serverOptions struct {
	// progressNotifyInterval is etcd's --experimental-watch-progress-notify-interval;
	// zero leaves the server's default.
	progressNotifyInterval time.Duration
}

// serverFunc starts a fresh etcd v3 API server that lives until t ends and
// returns its client endpoints. It must return only once the server serves.
type serverFunc func(t testing.TB, opts serverOptions) []string

// startEmbeddedEtcd is a serverFunc for go.etcd.io/etcd/server/v3/embed, set up
// like upstream's testserver.NewTestConfig (no fsync, free ports, temp dir,
// error-level logs).
func startEmbeddedEtcd(t testing.TB, opts serverOptions) []string {
	t.Helper()
	var lastErr error
	// Free ports are picked by binding and releasing them; on a shared machine
	// another process may grab one in between, so retry a few times.
	for range 3 {
		e, err := tryStartEmbeddedEtcd(t, opts)
		if err != nil {
			lastErr = err
			continue
		}
		return []string{e.Clients[0].Addr().String()}
	}
	t.Fatalf("starting embedded etcd: %v", lastErr)
	return nil
}

var embedStartMu sync.Mutex

func tryStartEmbeddedEtcd(t testing.TB, opts serverOptions) (*embed.Etcd, error) {
	embedStartMu.Lock()
	defer embedStartMu.Unlock()

	cfg := embed.NewConfig()
	cfg.UnsafeNoFsync = true
	// Short raft ticks, as etcd's integration framework uses (10 ms, 10 ticks): a
	// single member elects itself in milliseconds instead of about a second.
	cfg.TickMs, cfg.ElectionMs = 10, 100
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	if opts.progressNotifyInterval > 0 {
		cfg.WatchProgressNotifyInterval = opts.progressNotifyInterval
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed before ready: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd took too long to start")
	}
	t.Cleanup(e.Close)
	return e, nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newClient connects the way upstream's testserver.RunEtcd does, with the
// same recorders the list tests read back.
func newClient(t testing.TB, endpoints []string) *kubernetes.Client {
	t.Helper()
	c, err := kubernetes.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()}, //nolint:staticcheck // as upstream: fail fast if the server is not up
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("connecting to %v: %v", endpoints, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.KV = storagetesting.NewKVRecorder(c.KV)
	c.Kubernetes = storagetesting.NewKubernetesRecorder(c.Kubernetes)
	return c
}

// etcd3Store is the part of etcd3's (unexported) *store the tests use.
type etcd3Store interface {
	storage.Interface
	CompactRevision() int64
	EnableResourceSizeEstimation(storage.KeysFunc) error
	Close()
}

// testStore is an etcd3 store plus what upstream tests read from its
// unexported fields. It implements storagetesting.InterfaceWithPrefixTransformer
// and storagetesting.InterfaceWithCorruptTransformer by swapping the
// transformer the store (and its watcher) was built with.
type testStore struct {
	etcd3Store
	client            *kubernetes.Client
	codec             runtime.Codec
	transformer       *switchTransformer
	prefixTransformer *storagetesting.PrefixTransformer
	pathPrefix        string
	resourcePrefix    string
	versioner         storage.Versioner
}

var (
	_ storagetesting.InterfaceWithPrefixTransformer  = (*testStore)(nil)
	_ storagetesting.InterfaceWithCorruptTransformer = (*testStore)(nil)
)

// UpdatePrefixTransformer is upstream's storeWithPrefixTransformer.
func (s *testStore) UpdatePrefixTransformer(modifier storagetesting.PrefixTransformerModifier) func() {
	original := s.transformer.load()
	current, ok := original.(*storagetesting.PrefixTransformer)
	if !ok {
		panic(fmt.Sprintf("current transformer is %T, not a prefix transformer", original))
	}
	modified := *current
	s.transformer.store(modifier(&modified))
	return func() { s.transformer.store(original) }
}

// CorruptTransformer is upstream's storeWithCorruptedTransformer: reads fail
// with etcd3's "untransformable" corrupt-object error.
func (s *testStore) CorruptTransformer() func() {
	original := s.transformer.load()
	s.transformer.store(etcd3.WithCorruptObjErrorHandlingTransformer(&failingReads{Transformer: original}))
	return func() { s.transformer.store(original) }
}

// getKeys is etcd3's unexported store.getKeys: every key under the resource
// prefix, read with a keys-only prefix range.
func (s *testStore) getKeys(ctx context.Context) ([]string, error) {
	prefix, err := s.prepareKey(s.resourcePrefix, true)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.KV.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

// prepareKey is etcd3's store.prepareKey: the etcd key a storage key maps to.
func (s *testStore) prepareKey(key string, recursive bool) (string, error) {
	key, err := storage.PrepareKey(s.resourcePrefix, key, recursive)
	if err != nil {
		return "", err
	}
	if key[0] == '/' {
		key = key[1:]
	}
	return s.pathPrefix + key, nil
}

type failingReads struct{ value.Transformer }

func (f *failingReads) TransformFromStorage(context.Context, []byte, value.Context) ([]byte, bool, error) {
	return nil, true, fmt.Errorf("bits flipped")
}

// switchTransformer forwards to a transformer that tests may replace while
// the store runs.
type switchTransformer struct {
	cur atomic.Pointer[transformerBox]
}

type transformerBox struct{ value.Transformer }

func newSwitchTransformer(t value.Transformer) *switchTransformer {
	s := &switchTransformer{}
	s.store(t)
	return s
}

func (s *switchTransformer) load() value.Transformer   { return s.cur.Load().Transformer }
func (s *switchTransformer) store(t value.Transformer) { s.cur.Store(&transformerBox{t}) }

func (s *switchTransformer) TransformFromStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, bool, error) {
	return s.load().TransformFromStorage(ctx, data, dataCtx)
}

func (s *switchTransformer) TransformToStorage(ctx context.Context, data []byte, dataCtx value.Context) ([]byte, error) {
	return s.load().TransformToStorage(ctx, data, dataCtx)
}

// setupOptions mirror upstream's, plus the server options.
type setupOptions struct {
	server         serverOptions
	codec          runtime.Codec
	newFunc        func() runtime.Object
	newListFunc    func() runtime.Object
	prefix         string
	resourcePrefix string
	groupResource  schema.GroupResource
	leaseConfig    etcd3.LeaseManagerConfig
	// wrapKV, if set, replaces the client's KV before the store is built
	// (upstream swaps store.client.KV afterwards; same client object).
	wrapKV func(clientv3.KV) clientv3.KV
}

type setupOption func(*setupOptions)

func withPrefix(prefix string) setupOption {
	return func(o *setupOptions) { o.prefix = prefix }
}

func withResourcePrefix(prefix string) setupOption {
	return func(o *setupOptions) { o.resourcePrefix = prefix }
}

func withLeaseConfig(c etcd3.LeaseManagerConfig) setupOption {
	return func(o *setupOptions) { o.leaseConfig = c }
}

func withProgressNotifyInterval(d time.Duration) setupOption {
	return func(o *setupOptions) { o.server.progressNotifyInterval = d }
}

func withKVWrapper(wrap func(clientv3.KV) clientv3.KV) setupOption {
	return func(o *setupOptions) { o.wrapKV = wrap }
}

func withoutNewFunc() setupOption {
	return func(o *setupOptions) { o.newFunc = nil }
}

func defaultSetupOptions() setupOptions {
	cfg := etcd3.NewDefaultLeaseManagerConfig()
	// As upstream: 30s is the default test timeout, so don't reuse leases
	// for longer than 1s.
	cfg.ReuseDurationSeconds = 1
	return setupOptions{
		codec:          apitesting.TestCodec(codecs, examplev1.SchemeGroupVersion),
		newFunc:        func() runtime.Object { return &example.Pod{} },
		newListFunc:    func() runtime.Object { return &example.PodList{} },
		resourcePrefix: "/pods/",
		groupResource:  schema.GroupResource{Resource: "pods"},
		leaseConfig:    cfg,
	}
}

// harness builds stores on servers from one serverFunc.
type harness struct {
	server serverFunc
}

// setup is upstream's testSetup: a fresh server, a client, a compactor and an
// etcd3 store.
func (h harness) setup(t *testing.T, opts ...setupOption) (context.Context, *testStore) {
	t.Helper()
	o := defaultSetupOptions()
	for _, opt := range opts {
		opt(&o)
	}
	client := newClient(t, h.server(t, o.server))
	if o.wrapKV != nil {
		client.KV = o.wrapKV(client.KV)
	}
	versioner := storage.APIObjectVersioner{}
	compactor := etcd3.NewCompactor(client.Client, 0, clock.RealClock{}, nil)
	t.Cleanup(compactor.Stop)

	prefixTransformer := storagetesting.NewPrefixTransformer([]byte(defaultTestPrefix), false)
	transformer := newSwitchTransformer(prefixTransformer)
	s, err := etcd3.New(client, compactor, o.codec, o.newFunc, o.newListFunc, o.prefix, o.resourcePrefix,
		o.groupResource, transformer, o.leaseConfig, etcd3.NewDefaultDecoder(o.codec, versioner), versioner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	pathPrefix := path.Join("/", o.prefix) // as etcd3.New
	if !strings.HasSuffix(pathPrefix, "/") {
		pathPrefix += "/"
	}
	return t.Context(), &testStore{
		etcd3Store:        s,
		client:            client,
		codec:             o.codec,
		transformer:       transformer,
		prefixTransformer: prefixTransformer,
		pathPrefix:        pathPrefix,
		resourcePrefix:    o.resourcePrefix,
		versioner:         versioner,
	}
}

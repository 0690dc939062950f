package difftest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// serverFunc starts a fresh etcd v3 API server that lives until t ends and
// returns its client endpoint once it serves.
type serverFunc func(t testing.TB) string

// startEmbeddedEtcd runs go.etcd.io/etcd/server/v3/embed in-process on free
// ports with a temp dir and etcd's default limits (1.5 MiB requests, 128
// operations per txn).
func startEmbeddedEtcd(t testing.TB) string {
	t.Helper()
	var lastErr error
	// Free ports are picked by binding and releasing them; another process
	// may take one in between, so retry.
	for range 3 {
		addr, err := tryStartEmbeddedEtcd(t)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("starting embedded etcd: %v", lastErr)
	return ""
}

var embedStartMu sync.Mutex

func tryStartEmbeddedEtcd(t testing.TB) (string, error) {
	embedStartMu.Lock()
	defer embedStartMu.Unlock()
	cfg := embed.NewConfig()
	cfg.UnsafeNoFsync = true
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("picking a free port: %w", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
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
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", fmt.Errorf("starting etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return "", fmt.Errorf("etcd failed before ready: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return "", fmt.Errorf("etcd took too long to start")
	}
	t.Cleanup(e.Close)
	return e.Clients[0].Addr().String(), nil
}

package up

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keelson-dev/keelson/internal/testenv"
)

// readyWriter collects Run's output and closes ready once it says the
// cluster is up.
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Press Ctrl-C") {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func (w *readyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestRunStopsOnCancel runs `keelson up` (on etcd, with two nodes), uses the
// kubeconfig it prints, then cancels it as Ctrl-C does.
func TestRunStopsOnCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster; skipped with -short")
	}
	binDir, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Store = string(testenv.StoreEtcd)
	cfg.Nodes = 2
	cfg.BinDir = binDir
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	out := &readyWriter{ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, out, slog.New(slog.NewTextHandler(t.Output(), nil))) }()

	select {
	case <-out.ready:
	case err := <-errc:
		t.Fatalf("Run returned before the cluster was up: %v", err)
	case <-time.After(4 * time.Minute):
		cancel()
		<-errc
		t.Fatalf("cluster not up after 4 minutes; output:\n%s", out)
	}
	kubeconfig := filepath.Join(cfg.StateDir, "kubeconfig")
	if !strings.Contains(out.String(), "export KUBECONFIG="+kubeconfig) {
		t.Errorf("output does not say how to use the kubeconfig:\n%s", out)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != cfg.Nodes {
		t.Errorf("%d nodes, want %d", len(nodes.Items), cfg.Nodes)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of cancel")
	}
	// Everything is stopped: the apiserver no longer answers.
	rc.Timeout = 2 * time.Second
	client, _ = kubernetes.NewForConfig(rc)
	if _, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Error("kube-apiserver still answers after Run returned")
	}
}

// TestRunMissingBinaries fails with the command that builds them.
func TestRunMissingBinaries(t *testing.T) {
	cfg := Default()
	cfg.BinDir = t.TempDir()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	err := Run(t.Context(), cfg, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("Run = %v, want an error naming `make tools`", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Error("unexpected cancellation")
	}
}

package up

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keelson-dev/keelson/internal/testenv"
)

func TestValidateBackend(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"embedded", func(*Config) {}, ""},
		{"postgres", func(c *Config) { c.Backend = "postgres://u@db:5432/k" }, ""},
		{"mysql replicas", func(c *Config) { c.Backend = "mysql://root@tcp(db:3306)/k"; c.StoreReplicas = 3 }, ""},
		{"replicas without backend", func(c *Config) { c.StoreReplicas = 2 }, "need a database backend"},
		{"zero replicas", func(c *Config) { c.StoreReplicas = 0 }, "at least 1"},
		{"backend on etcd", func(c *Config) { c.Backend = "postgres://u@db/k"; c.Store = "etcd" }, "needs store"},
		{"bad scheme", func(c *Config) { c.Backend = "redis://u:hunter2@db/0" }, "want a postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	c := Default()
	c.Backend, c.StoreReplicas = "postgres://u:hunter2@db/k", 2
	if d := c.storeDescription(); strings.Contains(d, "hunter2") || !strings.Contains(d, "2 keelson store instances") {
		t.Errorf("storeDescription() = %q", d)
	}
}

// TestRunOnDatabaseReplicas runs `keelson up` with two store instances on a
// fresh PostgreSQL schema, writes and reads through the kubeconfig it
// prints, and stops it as Ctrl-C does.
func TestRunOnDatabaseReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster; skipped with -short")
	}
	binDir, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	keelson, err := testenv.LookBinary(binDir, testenv.BinKeelson)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Backend = testenv.NewDatabase(t, testenv.PostgresURL(), "keelson_up")
	cfg.StoreReplicas = 2
	cfg.Nodes = 1
	// kube-scheduler: this test is about the store; the scheduler has its
	// own tests.
	cfg.Scheduler = SchedulerKube
	cfg.BinDir = binDir
	cfg.Executable = keelson
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
	if !strings.Contains(out.String(), "2 keelson store instances on postgres://") {
		t.Errorf("banner does not name the store instances:\n%s", out)
	}
	for i := range 2 {
		if _, err := os.Stat(filepath.Join(cfg.StateDir, "logs", "store-keelson-"+strconv.Itoa(i)+".log")); err != nil {
			t.Errorf("store instance %d: %v", i, err)
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(cfg.StateDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "on-database"}, Data: map[string]string{"k": "v"}}
	if _, err := client.CoreV1().ConfigMaps("default").Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().ConfigMaps("default").Get(t.Context(), "on-database", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("reading back: %v %v", got, err)
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
}

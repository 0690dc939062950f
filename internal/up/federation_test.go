package up

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// TestRunClusters runs `keelson up --clusters 2`, checks that the banner
// names every kubeconfig, that both members are joined and Ready, and
// that a ConfigMap created on the host with a policy reaches both.
func TestRunClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three clusters; skipped with -short")
	}
	binDir, err := testenv.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Clusters = 2
	cfg.Nodes = 1
	cfg.Scheduler = SchedulerKube
	cfg.BinDir = binDir
	cfg.Executable = filepath.Join(binDir, testenv.BinKeelson)
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	out := &readyWriter{ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { errc <- Run(ctx, cfg, out, log) }()
	select {
	case <-out.ready:
	case err := <-errc:
		t.Fatalf("Run returned before the federation was up: %v\n%s", err, out)
	case <-time.After(5 * time.Minute):
		cancel()
		<-errc
		t.Fatalf("federation not up after 5 minutes; output:\n%s", out)
	}
	hostKC := filepath.Join(cfg.StateDir, HostName, "kubeconfig")
	for _, want := range []string{"export KUBECONFIG=" + hostKC, filepath.Join(cfg.StateDir, MemberName(1), "kubeconfig"),
		filepath.Join(cfg.StateDir, MemberName(2), "kubeconfig")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner does not name %s:\n%s", want, out)
		}
	}
	rc, err := clientcmd.BuildConfigFromFlags("", hostKC)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	poll := func(what string, cond func(ctx context.Context) error) {
		t.Helper()
		var last error
		if err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			last = cond(ctx)
			return last == nil, nil
		}); err != nil {
			t.Fatalf("waiting for %s: %v (last: %v)", what, err, last)
		}
	}
	for i := 1; i <= cfg.Clusters; i++ {
		poll(MemberName(i)+" Ready", func(ctx context.Context) error {
			u, err := dyn.Resource(v1alpha1.ClustersGVR).Get(ctx, MemberName(i), metav1.GetOptions{})
			if err != nil {
				return err
			}
			var cl v1alpha1.Cluster
			if err := v1alpha1.FromUnstructured(u.Object, &cl); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(cl.Status.Conditions, v1alpha1.ClusterReady) {
				return fmt.Errorf("conditions %+v", cl.Status.Conditions)
			}
			return nil
		})
	}
	host, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.CoreV1().ConfigMaps("default").Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hello"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(v1alpha1.PropagationPoliciesGVR).Namespace("default").Create(t.Context(), &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "PropagationPolicy",
		"metadata": map[string]any{"name": "hello"},
		"spec":     map[string]any{"resourceSelectors": []any{map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": "hello"}}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= cfg.Clusters; i++ {
		mc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(cfg.StateDir, MemberName(i), "kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		member, err := kubernetes.NewForConfig(mc)
		if err != nil {
			t.Fatal(err)
		}
		poll("the ConfigMap in "+MemberName(i), func(ctx context.Context) error {
			cm, err := member.CoreV1().ConfigMaps("default").Get(ctx, "hello", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data["k"] != "v" {
				return fmt.Errorf("data %v", cm.Data)
			}
			return nil
		})
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "logs", "federation.log")); err != nil {
		t.Errorf("no federation log: %v", err)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return within two minutes of cancel")
	}
}

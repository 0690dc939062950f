package testenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p, err := ensurePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.caPEM) {
		t.Fatal("CA certificate does not parse")
	}
	b, err := os.ReadFile(p.serverCert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", kubernetesServiceIP} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if len(p.tokens) != 4 || p.tokens[UserAdmin] == "" {
		t.Errorf("tokens = %v", p.tokens)
	}

	// A second call reuses the files.
	p2, err := ensurePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p2.tokens[UserAdmin] != p.tokens[UserAdmin] || string(p2.caPEM) != string(p.caPEM) {
		t.Error("ensurePKI regenerated an existing directory")
	}
}

func TestRepoRootAndLookBinary(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := RepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv")); err != nil {
		t.Errorf("RepoRoot = %s, which has no internal/testenv", root)
	}
	if _, err := RepoRoot(t.TempDir()); err == nil {
		t.Error("RepoRoot found a root above a temporary directory")
	}
	_, err = LookBinary(t.TempDir(), BinKubeAPIServer)
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("LookBinary error = %v, want one naming `make tools`", err)
	}
}

func TestParseStoreKind(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    StoreKind
		wantErr bool
	}{
		{"keelson", StoreKeelson, false},
		{"etcd", StoreEtcd, false},
		{"kine", "", true},
	} {
		got, err := ParseStoreKind(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseStoreKind(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestTailFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tailFile(p, 2); got != "c\nd" {
		t.Errorf("tailFile = %q", got)
	}
}

// TestEtcdTwoAPIServersRestart starts etcd and two kube-apiservers, writes
// through one and reads through the other, then crashes and restarts etcd
// and checks both recover. It checks the harness itself; test/integration
// drives the full stack.
func TestEtcdTwoAPIServersRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiservers; skipped with -short")
	}
	env := Start(t, Options{Store: StoreEtcd, APIServers: 2})
	if len(env.APIServers) != 2 {
		t.Fatalf("%d apiservers, want 2", len(env.APIServers))
	}
	ctx := t.Context()
	var clients []*kubernetes.Clientset
	for _, a := range env.APIServers {
		if _, err := os.Stat(a.Kubeconfig); err != nil {
			t.Fatalf("kubeconfig: %v", err)
		}
		c, err := kubernetes.NewForConfig(a.Config)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	if env.Kubeconfig != env.APIServers[0].Kubeconfig || env.APIServers[0].Kubeconfig == env.APIServers[1].Kubeconfig {
		t.Errorf("kubeconfigs: env %s, apiservers %s and %s", env.Kubeconfig, env.APIServers[0].Kubeconfig, env.APIServers[1].Kubeconfig)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "harness"}, Data: map[string]string{"k": "v"}}
	if _, err := clients[0].CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := clients[1].CoreV1().ConfigMaps("default").Get(ctx, "harness", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("reading through the second apiserver: %v, %v", got, err)
	}

	env.Store.Kill()
	if env.Store.Running() {
		t.Fatal("store still running after Kill")
	}
	if err := env.Store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitAPIServersReady(ctx); err != nil {
		t.Fatal(err)
	}
	// /readyz may have answered before an apiserver noticed the crash, so
	// poll a quorum read through each.
	for i, c := range clients {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := c.CoreV1().ConfigMaps("default").Get(ctx, "harness", metav1.GetOptions{})
			return err == nil && got.Data["k"] == "v", nil
		})
		if err != nil {
			t.Fatalf("reading through apiserver %d after the store restart: %v", i, err)
		}
	}
}

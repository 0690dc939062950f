package scheduler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// rbacManifest is the RBAC the project ships for running keelson
// scheduler in a cluster.
var rbacManifest = filepath.Join("..", "..", "deploy", "scheduler", "rbac.yaml")

// rbacState is the ServiceAccount kubeconfig of one environment (made
// once per environment: with -count=N each run has its own).
type rbacState struct {
	once       sync.Once
	kubeconfig string
	err        error
}

// rbacScheduler returns a kubeconfig whose user is the ServiceAccount of
// deploy/scheduler/rbac.yaml (applied once per environment), so that a scheduler started
// with it has exactly the permissions the manifest grants.
func (s *suite) rbacScheduler(t *testing.T) string {
	t.Helper()
	s.rbac.once.Do(func() { s.rbac.kubeconfig, s.rbac.err = s.applyRBAC(t) })
	if s.rbac.err != nil {
		t.Fatal(s.rbac.err)
	}
	return s.rbac.kubeconfig
}

func (s *suite) applyRBAC(t *testing.T) (string, error) {
	ctx := t.Context()
	raw, err := os.ReadFile(rbacManifest)
	if err != nil {
		return "", err
	}
	var sa *corev1.ServiceAccount
	for doc := range bytes.SplitSeq(raw, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return "", fmt.Errorf("%s: %w", rbacManifest, err)
		}
		var obj any
		switch meta.Kind {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{}
			obj = sa
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "Role":
			obj = &rbacv1.Role{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		default:
			return "", fmt.Errorf("%s: unexpected kind %q", rbacManifest, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return "", fmt.Errorf("%s: %s: %w", rbacManifest, meta.Kind, err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = s.client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = s.client.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = s.client.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = s.client.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = s.client.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("applying %s: %w", meta.Kind, err)
		}
	}
	if sa == nil {
		return "", fmt.Errorf("%s has no ServiceAccount", rbacManifest)
	}
	expiry := int64(3600)
	tr, err := s.client.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: s.env.Config.Host, CertificateAuthorityData: s.env.Config.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	cfg.CurrentContext = "c"
	// In the environment's directory: it outlives the subtest that made it.
	path := filepath.Join(s.env.Dir, "keelson-scheduler-sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// wantNoForbidden fails when the scheduler's log shows a request the
// API server refused for lack of permission.
func wantNoForbidden(t *testing.T, logPath string) {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
			t.Errorf("scheduler under deploy/scheduler/rbac.yaml was refused: %s", line)
		}
	}
}

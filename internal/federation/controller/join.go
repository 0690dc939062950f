package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// JoinOptions describe a member to join.
type JoinOptions struct {
	Name string
	// Kubeconfig of the member, stored in a Secret on the host; it must
	// carry its credentials inline (no file references).
	Kubeconfig []byte
	Region     string
	Zone       string
	Provider   string
	Labels     map[string]string
	Taints     []corev1.Taint
}

var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// SecretName is the host Secret holding cluster name's kubeconfig.
func SecretName(name string) string { return "cluster-" + name }

// Join checks that the member answers, stores its kubeconfig in a Secret
// in the keelson-federation namespace of the host and creates (or
// updates) its Cluster object. It installs the CRDs if they are missing.
func Join(ctx context.Context, host *rest.Config, o JoinOptions) error {
	if !clusterNameRE.MatchString(o.Name) || len(o.Name) > 63 {
		return fmt.Errorf("cluster name %q must be a DNS label (lower case letters, digits, '-')", o.Name)
	}
	mcfg, err := memberConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	mkube, err := kubernetes.NewForConfig(mcfg)
	if err != nil {
		return fmt.Errorf("member client: %w", err)
	}
	if _, err := mkube.Discovery().ServerVersion(); err != nil {
		return fmt.Errorf("member cluster %s does not answer: %w", o.Name, err)
	}
	kube, err := kubernetes.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	if err := InstallCRDs(ctx, dyn); err != nil {
		return err
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s on the host: %w", v1alpha1.Namespace, err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SecretName(o.Name), Namespace: v1alpha1.Namespace,
			Labels: map[string]string{"federation.keelson.dev/cluster": o.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"kubeconfig": o.Kubeconfig},
	}
	secrets := kube.CoreV1().Secrets(v1alpha1.Namespace)
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating kubeconfig secret: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("storing kubeconfig secret: %w", err)
	}
	cl := &v1alpha1.Cluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Cluster"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: o.Labels},
		Spec: v1alpha1.ClusterSpec{SecretRef: v1alpha1.SecretRef{Namespace: v1alpha1.Namespace, Name: SecretName(o.Name)},
			Region: o.Region, Zone: o.Zone, Provider: o.Provider, Taints: o.Taints},
	}
	m, err := v1alpha1.ToUnstructured(cl)
	if err != nil {
		return err
	}
	delete(m, "status")
	obj := &unstructured.Unstructured{Object: m}
	clusters := dyn.Resource(v1alpha1.ClustersGVR)
	if _, err := clusters.Create(ctx, obj, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		cur, err := clusters.Get(ctx, o.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading cluster %s: %w", o.Name, err)
		}
		obj.SetResourceVersion(cur.GetResourceVersion())
		if _, err := clusters.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating cluster %s: %w", o.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("creating cluster %s: %w", o.Name, err)
	}
	return nil
}

// ErrNotJoined is returned by Unjoin for an unknown cluster.
var ErrNotJoined = errors.New("cluster is not joined")

// Unjoin deletes the Cluster and its kubeconfig Secret. Objects already
// in the member stay there (orphaned).
func Unjoin(ctx context.Context, host *rest.Config, name string) error {
	dyn, err := dynamic.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	err = dyn.Resource(v1alpha1.ClustersGVR).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %s", ErrNotJoined, name)
	}
	if err != nil {
		return fmt.Errorf("deleting cluster %s: %w", name, err)
	}
	if err := kube.CoreV1().Secrets(v1alpha1.Namespace).Delete(ctx, SecretName(name), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting kubeconfig secret of %s: %w", name, err)
	}
	return nil
}

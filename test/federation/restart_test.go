package federation

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/controller"
)

// metricSum adds the values of every series of name in reg whose labels
// include want (name=value pairs).
func metricSum(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			if m.Counter != nil {
				s += m.Counter.GetValue()
			}
		}
	}
	return s
}

// startControlPlane runs a controller until the returned stop is called.
func startControlPlane(t *testing.T, host *cluster) (*prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := controller.Default()
	cfg.Host = host.env.Config
	cfg.HealthInterval = 300 * time.Millisecond
	cfg.Registerer = reg
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	if err := c.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	return reg, cancel
}

// TestRestartWritesNothingUnchanged: a control plane started over objects
// already propagated writes nothing to members for the unchanged ones
// (their member copies carry the rendering's hash), and still applies a
// change made while it was down.
func TestRestartWritesNothingUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kube-apiservers on keelson stores; skipped with -short")
	}
	ctx := t.Context()
	host := start(t, "host")
	m1 := start(t, "m1")
	const ns, objects = "restart", 20

	_, stop := startControlPlane(t, host)
	kc, err := os.ReadFile(m1.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := controller.Join(ctx, host.env.Config, controller.JoinOptions{Name: "m1", Kubeconfig: kc}); err != nil {
		t.Fatal(err)
	}
	if _, err := host.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createYAML(t, host.dyn, v1alpha1.PropagationPoliciesGVR, ns, map[string]any{
		"apiVersion": "federation.keelson.dev/v1alpha1", "kind": "PropagationPolicy",
		"metadata": map[string]any{"name": "all", "namespace": ns},
		"spec": map[string]any{
			"resourceSelectors": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}},
			"placement":         map[string]any{"clusterAffinity": map[string]any{"clusterNames": []any{"m1"}}},
		},
	})
	// An object of the same name that the member already has and keelson
	// did not create is left alone (conflictResolution Abort), although
	// the member cache sees it before any read.
	if _, err := m1.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.kube.AppsV1().Deployments(ns).Create(ctx, restartDeployment(ns, "foreign", "theirs:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := host.kube.AppsV1().Deployments(ns).Create(ctx, restartDeployment(ns, "foreign", "ours:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range objects {
		if _, err := host.kube.AppsV1().Deployments(ns).Create(ctx, restartDeployment(ns, fmt.Sprintf("d%02d", i), "app:1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all objects in m1", func(ctx context.Context) (bool, error) {
		l, err := m1.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		managed := 0
		for _, d := range l.Items {
			if d.Labels[v1alpha1.LabelManaged] == "true" {
				managed++
			}
		}
		return managed == objects, fmt.Errorf("%d of %d", managed, objects)
	})
	eventually(t, "the conflict reported on the host", func(ctx context.Context) (bool, error) {
		d, err := host.kube.AppsV1().Deployments(ns).Get(ctx, "foreign", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return strings.Contains(d.Annotations[v1alpha1.AnnotationClusters], "conflict"), fmt.Errorf("breakdown %q", d.Annotations[v1alpha1.AnnotationClusters])
	})
	stop()

	// Changed while no control plane runs.
	d, err := host.kube.AppsV1().Deployments(ns).Get(ctx, "d00", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "app:2"
	if _, err := host.kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	reg, stop2 := startControlPlane(t, host)
	defer stop2()
	eventually(t, "the change in m1", func(ctx context.Context) (bool, error) {
		d, err := m1.kube.AppsV1().Deployments(ns).Get(ctx, "d00", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Spec.Template.Spec.Containers[0].Image == "app:2", nil
	})
	// Every unchanged object is looked at once and skipped.
	err = wait.PollUntilContextTimeout(ctx, pollInterval, waitTimeout, true, func(context.Context) (bool, error) {
		return metricSum(t, reg, "keelson_federation_member_writes_skipped_total", nil) >= objects-1, nil
	})
	if err != nil {
		t.Fatalf("skipped writes: %v after restart, want %d: %v", metricSum(t, reg, "keelson_federation_member_writes_skipped_total", nil), objects-1, err)
	}
	// Nor are unchanged host objects written again (the changed one may
	// get its status: its generation moved).
	if got := metricSum(t, reg, "keelson_federation_host_writes_total", nil); got > 1 {
		t.Errorf("host writes after restart = %v, want at most 1 (the changed object's status)", got)
	}
	if got := metricSum(t, reg, "keelson_federation_member_writes_total", map[string]string{"op": "apply"}); got != 1 {
		t.Fatalf("member applies after restart = %v, want 1 (the changed object only)", got)
	}
	l, err := m1.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range l.Items {
		img := d.Spec.Template.Spec.Containers[0].Image
		switch d.Name {
		case "foreign":
			if img != "theirs:1" || d.Labels[v1alpha1.LabelManaged] != "" {
				t.Errorf("foreign object taken over: image %s labels %v", img, d.Labels)
			}
		case "d00":
			if img != "app:2" {
				t.Errorf("d00 has image %s", img)
			}
		default:
			if img != "app:1" {
				t.Errorf("%s has image %s", d.Name, img)
			}
		}
	}
}

func restartDeployment(ns, name, image string) *appsv1.Deployment {
	replicas := int32(1)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/controller"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// pollInterval is how often conditions are polled (never a sleep used to
// wait for something).
const (
	pollInterval = 100 * time.Millisecond
	waitTimeout  = 60 * time.Second
)

func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, waitTimeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

type cluster struct {
	name string
	env  *testenv.Env
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

func start(t *testing.T, name string) *cluster {
	env := testenv.Start(t, testenv.Options{Store: testenv.StoreKeelson})
	kube, err := env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{name: name, env: env, kube: kube, dyn: dyn}
}

func TestFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three kube-apiservers on keelson stores; skipped with -short")
	}
	ctx := t.Context()
	host := start(t, "host")
	m1 := start(t, "m1")
	m2 := start(t, "m2")

	cfg := controller.Default()
	cfg.Host = host.env.Config
	cfg.Workers = 2
	cfg.HealthInterval = 300 * time.Millisecond
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Join both members.
	for _, m := range []struct {
		c      *cluster
		region string
	}{{m1, "eu"}, {m2, "us"}} {
		kc, err := os.ReadFile(m.c.env.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if err := controller.Join(ctx, host.env.Config, controller.JoinOptions{Name: m.c.name, Kubeconfig: kc, Region: m.region}); err != nil {
			t.Fatalf("join %s: %v", m.c.name, err)
		}
	}
	if err := controller.Join(ctx, host.env.Config, controller.JoinOptions{Name: "Bad_Name", Kubeconfig: []byte("x")}); err == nil {
		t.Fatal("join accepted a bad cluster name")
	}
	for _, name := range []string{"m1", "m2"} {
		eventually(t, "cluster "+name+" Ready", func(ctx context.Context) (bool, error) {
			u, err := host.dyn.Resource(v1alpha1.ClustersGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			var cl v1alpha1.Cluster
			if err := v1alpha1.FromUnstructured(u.Object, &cl); err != nil {
				return false, err
			}
			for _, cond := range cl.Status.Conditions {
				if cond.Type == v1alpha1.ClusterReady && cond.Status == metav1.ConditionTrue {
					return cl.Status.KubernetesVersion != "", nil
				}
			}
			return false, fmt.Errorf("conditions %+v", cl.Status.Conditions)
		})
	}

	// Objects on the host: a namespace, a ConfigMap the Deployment mounts,
	// the Deployment, a Divided policy (m1:m2 = 2:1) and an image override
	// for m2.
	const ns = "shop"
	if _, err := host.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := host.kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: "nginx:1"}},
					Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}},
				},
			},
		},
	}
	if _, err := host.kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createYAML(t, host.dyn, v1alpha1.PropagationPoliciesGVR, ns, map[string]any{
		"apiVersion": "federation.keelson.dev/v1alpha1", "kind": "PropagationPolicy",
		"metadata": map[string]any{"name": "web", "namespace": ns},
		"spec": map[string]any{
			"resourceSelectors": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
			"placement": map[string]any{
				"clusterAffinity": map[string]any{"clusterNames": []any{"m1", "m2"}},
				"replicaScheduling": map[string]any{"type": "Divided", "divisionPreference": "Weighted", "staticWeights": []any{
					map[string]any{"targetCluster": map[string]any{"clusterNames": []any{"m1"}}, "weight": int64(2)},
					map[string]any{"targetCluster": map[string]any{"clusterNames": []any{"m2"}}, "weight": int64(1)},
				}},
			},
		},
	})
	createYAML(t, host.dyn, v1alpha1.OverridePoliciesGVR, ns, map[string]any{
		"apiVersion": "federation.keelson.dev/v1alpha1", "kind": "OverridePolicy",
		"metadata": map[string]any{"name": "us-image", "namespace": ns},
		"spec": map[string]any{
			"resourceSelectors": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}},
			"rules": []any{map[string]any{
				"targetCluster": map[string]any{"clusterNames": []any{"m2"}},
				"overriders":    map[string]any{"image": []any{map[string]any{"container": "app", "image": "mirror.us/nginx:1"}}},
			}},
		},
	})

	// Spec-level propagation: replicas divided, image overridden on m2,
	// the ConfigMap followed the Deployment.
	want := map[*cluster]struct {
		replicas int32
		image    string
	}{m1: {2, "nginx:1"}, m2: {1, "mirror.us/nginx:1"}}
	for m, w := range want {
		eventually(t, "deployment on "+m.name, func(ctx context.Context) (bool, error) {
			d, err := m.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got := d.Spec.Template.Spec.Containers[0].Image
			if *d.Spec.Replicas != w.replicas || got != w.image {
				return false, fmt.Errorf("replicas %d image %s", *d.Spec.Replicas, got)
			}
			if d.Labels[v1alpha1.LabelManaged] != "true" || d.Annotations[v1alpha1.AnnotationHash] == "" {
				return false, fmt.Errorf("labels %v annotations %v", d.Labels, d.Annotations)
			}
			return true, nil
		})
		eventually(t, "configmap on "+m.name, func(ctx context.Context) (bool, error) {
			cm, err := m.kube.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return cm.Data["k"] == "v", nil
		})
		// The member's field manager is keelson's.
		d, err := m.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range d.ManagedFields {
			found = found || (mf.Manager == v1alpha1.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply)
		}
		if !found {
			t.Errorf("%s: no server-side apply by %s in managedFields", m.name, v1alpha1.FieldManager)
		}
	}

	// Status plumbing: the members run no controllers, so the test plays
	// their deployment controller and writes member status; the host
	// object must show the sum, its generation observed, and a breakdown.
	for m, w := range want {
		d, err := m.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: w.replicas, ReadyReplicas: w.replicas,
			UpdatedReplicas: w.replicas, AvailableReplicas: w.replicas,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"}}}
		if _, err := m.kube.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "aggregated status on the host", func(ctx context.Context) (bool, error) {
		d, err := host.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		if s.ObservedGeneration != d.Generation || s.Replicas != 3 || s.ReadyReplicas != 3 || s.UpdatedReplicas != 3 || s.AvailableReplicas != 3 {
			return false, fmt.Errorf("status %+v generation %d", s, d.Generation)
		}
		var bs []v1alpha1.ClusterBreakdown
		if err := json.Unmarshal([]byte(d.Annotations[v1alpha1.AnnotationClusters]), &bs); err != nil {
			return false, err
		}
		if len(bs) != 2 || !bs[0].Applied || !bs[1].Applied || *bs[0].Replicas != 2 || *bs[1].Replicas != 1 {
			return false, fmt.Errorf("breakdown %s", d.Annotations[v1alpha1.AnnotationClusters])
		}
		return true, nil
	})

	// A spec change on the host: generation moves on, observedGeneration
	// waits for the members; replicas are re-divided (6 → 4:2).
	d, err := host.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	six := int32(6)
	d.Spec.Replicas = &six
	if d, err = host.kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-divided replicas", func(ctx context.Context) (bool, error) {
		a, err := m1.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		b, err := m2.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return *a.Spec.Replicas == 4 && *b.Spec.Replicas == 2, nil
	})
	if got, _ := host.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); got.Status.ObservedGeneration >= got.Generation {
		t.Errorf("observedGeneration %d caught up with generation %d before the members observed it", got.Status.ObservedGeneration, got.Generation)
	}

	// Deletion propagates: the member copies go, then the host object.
	if err := host.kube.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*cluster{m1, m2, host} {
		eventually(t, "deployment deleted from "+m.name, func(ctx context.Context) (bool, error) {
			_, err := m.kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
	}
}

func createYAML(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns string, obj map[string]any) {
	t.Helper()
	if _, err := dyn.Resource(gvr).Namespace(ns).Create(t.Context(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s: %v", gvr.Resource, err)
	}
}

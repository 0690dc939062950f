package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/controller"
	"github.com/keelson-dev/keelson/internal/federation/placement"
	"github.com/keelson-dev/keelson/internal/testenv"
)

var (
	deploymentsGVR  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulsetsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	daemonsetsGVR   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	jobsGVR         = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	servicesGVR     = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	configmapsGVR   = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	widgetsGVR      = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	crdsGVR         = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// longWait bounds conditions that need pods to start in members (kube-
// scheduler, kwok) on a busy 2-core machine.
const longWait = 3 * time.Minute

// fleet is one host and three members, shared by the subtests of
// TestFederationMembers.
type fleet struct {
	host    *cluster
	members []*cluster // m1 (eu, 1 node), m2 (eu, 2 nodes), m3 (us, 3 nodes)
	reg     *prometheus.Registry
}

func (f *fleet) member(name string) *cluster {
	for _, m := range f.members {
		if m.name == name {
			return m
		}
	}
	panic("no member " + name)
}

// startFleet starts the four clusters in parallel, runs the control plane
// with short health intervals and joins the members.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	type spec struct {
		name  string
		nodes int
	}
	specs := []spec{{"host", 0}, {"m1", 1}, {"m2", 2}, {"m3", 3}}
	clusters := make([]*cluster, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() {
			opts := testenv.Options{Store: testenv.StoreKeelson, Logger: testLogger(t, s.name)}
			if s.nodes > 0 {
				opts.ControllerManager = true
				opts.Scheduler = true
				opts.KwokNodes = s.nodes
				// The HPA test should not wait for the default 15 s period.
				// Nodes must outlive the apiserver pauses of the failover
				// test: kwok does not make pods ready again after the node
				// lifecycle controller marked them not ready.
				opts.ControllerManagerArgs = []string{"--horizontal-pod-autoscaler-sync-period=1s", "--node-monitor-grace-period=10m"}
			}
			dir, err := os.MkdirTemp("", "keelson-fed-"+s.name+"-")
			if err != nil {
				errs[i] = err
				return
			}
			opts.Dir = dir
			env, err := testenv.New(t.Context(), opts)
			if env != nil {
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("%s: logs kept in %s", s.name, env.LogDir)
						_ = env.Close()
						return
					}
					_ = env.Close()
					_ = os.RemoveAll(dir)
				})
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w (logs in %s)", s.name, err, dir)
				return
			}
			kube, err := env.Clientset()
			if err != nil {
				errs[i] = err
				return
			}
			dyn, err := dynamic.NewForConfig(env.Config)
			if err != nil {
				errs[i] = err
				return
			}
			clusters[i] = &cluster{name: s.name, env: env, kube: kube, dyn: dyn}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting the fleet: %v", err)
	}
	f := &fleet{host: clusters[0], members: clusters[1:], reg: prometheus.NewRegistry()}

	cfg := controller.Default()
	cfg.Host = f.host.env.Config
	cfg.Workers = 4
	cfg.HealthInterval = 250 * time.Millisecond
	cfg.HealthTimeout = time.Second
	cfg.MemberTimeout = 3 * time.Second
	cfg.Registerer = f.reg
	cfg.Logger = testLogger(t, "federation")
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	regions := map[string][2]string{"m1": {"eu", "eu-1"}, "m2": {"eu", "eu-2"}, "m3": {"us", "us-1"}}
	for _, m := range f.members {
		kc, err := os.ReadFile(m.env.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		r := regions[m.name]
		if err := controller.Join(t.Context(), f.host.env.Config, controller.JoinOptions{Name: m.name, Kubeconfig: kc, Region: r[0], Zone: r[1]}); err != nil {
			t.Fatalf("join %s: %v", m.name, err)
		}
	}
	for _, m := range f.members {
		f.waitCluster(t, m.name, true, true)
	}
	return f
}

// testLogger logs to the test output, prefixed by component, at Warn and
// above (a healthy run stays quiet).
func testLogger(t *testing.T, component string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("c", component)
}

// waitCluster waits until the Cluster's Reachable and Ready conditions
// have the given values.
func (f *fleet) waitCluster(t *testing.T, name string, reachable, ready bool) {
	t.Helper()
	want := func(b bool) metav1.ConditionStatus {
		if b {
			return metav1.ConditionTrue
		}
		return metav1.ConditionFalse
	}
	waitWithin(t, longWait, fmt.Sprintf("cluster %s reachable=%v ready=%v", name, reachable, ready), func(ctx context.Context) (bool, error) {
		u, err := f.host.dyn.Resource(v1alpha1.ClustersGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var cl v1alpha1.Cluster
		if err := v1alpha1.FromUnstructured(u.Object, &cl); err != nil {
			return false, err
		}
		r := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReachable)
		rd := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReady)
		if r == nil || rd == nil || r.Status != want(reachable) || rd.Status != want(ready) {
			return false, fmt.Errorf("conditions %+v", cl.Status.Conditions)
		}
		return true, nil
	})
}

func waitWithin(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// kubectl runs kubectl against kubeconfig with stdin and returns its
// output; a failure fails the test.
func kubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is needed on $PATH for this test (install kubectl v1.36): %v", err)
	}
	cmd := exec.CommandContext(t.Context(), "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (f *fleet) apply(t *testing.T, yaml string) {
	t.Helper()
	kubectl(t, f.host.env.Kubeconfig, yaml, "apply", "-f", "-")
}

// get reads ns/name of gvr in c (nil, nil when absent).
func get(ctx context.Context, c *cluster, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	u, err := c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return u, err
}

func replicasOf(u *unstructured.Unstructured) int64 {
	n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	return n
}

// waitReplicas waits until each member named in want holds the workload
// with that many replicas (-1: must not hold it) and, if ready, reports
// them ready.
func (f *fleet) waitReplicas(t *testing.T, gvr schema.GroupVersionResource, ns, name string, want map[string]int64, ready bool) {
	t.Helper()
	waitWithin(t, longWait, fmt.Sprintf("%s %s/%s replicas %v", gvr.Resource, ns, name, want), func(ctx context.Context) (bool, error) {
		for cl, n := range want {
			u, err := get(ctx, f.member(cl), gvr, ns, name)
			if err != nil {
				return false, fmt.Errorf("%s: %w", cl, err)
			}
			if n < 0 {
				if u != nil {
					return false, fmt.Errorf("%s still holds it", cl)
				}
				continue
			}
			if u == nil {
				return false, fmt.Errorf("%s: not there", cl)
			}
			if got := replicasOf(u); got != n {
				return false, fmt.Errorf("%s: %d replicas", cl, got)
			}
			if r, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas"); ready && r != n {
				return false, fmt.Errorf("%s: %d of %d ready", cl, r, n)
			}
		}
		return true, nil
	})
}

func breakdownOf(ctx context.Context, f *fleet, gvr schema.GroupVersionResource, ns, name string) ([]v1alpha1.ClusterBreakdown, error) {
	u, err := get(ctx, f.host, gvr, ns, name)
	if err != nil || u == nil {
		return nil, fmt.Errorf("host object: %v", err)
	}
	var bs []v1alpha1.ClusterBreakdown
	a := u.GetAnnotations()[v1alpha1.AnnotationClusters]
	if err := json.Unmarshal([]byte(a), &bs); err != nil {
		return nil, fmt.Errorf("breakdown %q: %w", a, err)
	}
	return bs, nil
}

func entry(bs []v1alpha1.ClusterBreakdown, cl string) *v1alpha1.ClusterBreakdown {
	for i := range bs {
		if bs[i].Cluster == cl {
			return &bs[i]
		}
	}
	return nil
}

// TestFederationMembers is the proof of the federation on one host and
// three members, each a kube-apiserver on its own keelson store with
// kube-controller-manager, kube-scheduler and kwok nodes. The subtests
// share the fleet and run in order; each uses its own namespace.
func TestFederationMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four clusters; skipped with -short")
	}
	f := startFleet(t)
	t.Run("kinds", f.testKinds)
	t.Run("divisionOverridesDepsRollout", f.testDivision)
	t.Run("capacityDivision", f.testCapacity)
	t.Run("memberHPA", f.testHPA)
	t.Run("drift", f.testDrift)
	t.Run("adoption", f.testAdoption)
	t.Run("failover", f.testFailover)
	t.Run("unjoinOrphans", f.testUnjoin)
	t.Run("metrics", f.testMetrics)
	t.Run("failoverUnreadyWritable", f.testFailoverUnreadyWritable)
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: ClusterPropagationPolicy
metadata: {name: widget-crd}
spec:
  resourceSelectors: [{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, name: widgets.example.com}]
`

const kindsYAML = `apiVersion: v1
kind: Namespace
metadata: {name: kinds}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: kinds}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: sec, namespace: kinds}
stringData: {password: s3cret}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep, namespace: kinds}
spec:
  replicas: 2
  selector: {matchLabels: {app: dep}}
  template:
    metadata: {labels: {app: dep}}
    spec: {containers: [{name: app, image: nginx:1}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: kinds}
spec:
  selector: {app: dep}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts, namespace: kinds}
spec:
  replicas: 1
  serviceName: svc
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec: {containers: [{name: app, image: redis:7}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: kinds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec: {containers: [{name: agent, image: agent:1}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: job, namespace: kinds}
spec:
  completions: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: busybox:1}]
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: everything, namespace: kinds}
spec:
  resourceSelectors:
  - {apiVersion: v1, kind: ConfigMap, name: cm}
  - {apiVersion: v1, kind: Secret, name: sec}
  - {apiVersion: apps/v1, kind: Deployment}
  - {apiVersion: v1, kind: Service}
  - {apiVersion: apps/v1, kind: StatefulSet}
  - {apiVersion: apps/v1, kind: DaemonSet}
  - {apiVersion: batch/v1, kind: Job}
  - {apiVersion: example.com/v1, kind: Widget}
`

// testKinds propagates each kind the issue names (Duplicated to every
// member) and checks host status for the workloads with kubectl.
func (f *fleet) testKinds(t *testing.T) {
	ctx := t.Context()
	hostKC := f.host.env.Kubeconfig
	f.apply(t, widgetCRD)
	kubectl(t, hostKC, "", "wait", "--for=condition=established", "--timeout=60s", "crd/widgets.example.com")
	f.apply(t, kindsYAML)
	f.apply(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: kinds}\nspec: {size: 3}\n")

	objs := []struct {
		gvr  schema.GroupVersionResource
		ns   string
		name string
	}{
		{crdsGVR, "", "widgets.example.com"}, {configmapsGVR, "kinds", "cm"}, {secretsGVR, "kinds", "sec"},
		{deploymentsGVR, "kinds", "dep"}, {servicesGVR, "kinds", "svc"}, {statefulsetsGVR, "kinds", "sts"},
		{daemonsetsGVR, "kinds", "ds"}, {jobsGVR, "kinds", "job"}, {widgetsGVR, "kinds", "w1"},
	}
	for _, m := range f.members {
		for _, o := range objs {
			waitWithin(t, longWait, fmt.Sprintf("%s %s/%s in %s", o.gvr.Resource, o.ns, o.name, m.name), func(ctx context.Context) (bool, error) {
				u, err := get(ctx, m, o.gvr, o.ns, o.name)
				if err != nil || u == nil {
					return false, err
				}
				if u.GetLabels()[v1alpha1.LabelManaged] != "true" {
					return false, fmt.Errorf("labels %v", u.GetLabels())
				}
				return true, nil
			})
		}
		sec, err := m.kube.CoreV1().Secrets("kinds").Get(ctx, "sec", metav1.GetOptions{})
		if err != nil || string(sec.Data["password"]) != "s3cret" {
			t.Errorf("%s: secret %v, err %v", m.name, sec, err)
		}
		w, err := get(ctx, m, widgetsGVR, "kinds", "w1")
		if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); err != nil || size != 3 {
			t.Errorf("%s: widget size %d, err %v", m.name, size, err)
		}
		svc, err := m.kube.CoreV1().Services("kinds").Get(ctx, "svc", metav1.GetOptions{})
		if err != nil || svc.Spec.ClusterIP == "" {
			t.Errorf("%s: service %v: the member should allocate its own cluster IP", m.name, err)
		}
	}

	// Workload status on the host, read the way users read it.
	kubectl(t, hostKC, "", "rollout", "status", "-n", "kinds", "deployment/dep", "--timeout=180s")
	kubectl(t, hostKC, "", "rollout", "status", "-n", "kinds", "statefulset/sts", "--timeout=180s")
	kubectl(t, hostKC, "", "rollout", "status", "-n", "kinds", "daemonset/ds", "--timeout=180s")
	kubectl(t, hostKC, "", "wait", "-n", "kinds", "--for=condition=complete", "job/job", "--timeout=180s")
	d, err := f.host.kube.AppsV1().Deployments("kinds").Get(ctx, "dep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ReadyReplicas != 6 || d.Status.ObservedGeneration != d.Generation {
		t.Errorf("host deployment status %+v, want 6 ready (2 in each of 3 members)", d.Status)
	}
	ds, err := f.host.kube.AppsV1().DaemonSets("kinds").Get(ctx, "ds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Status.DesiredNumberScheduled != 6 || ds.Status.NumberReady != 6 {
		t.Errorf("host daemonset status %+v, want 6 desired and ready (1+2+3 nodes)", ds.Status)
	}
	job, err := f.host.kube.BatchV1().Jobs("kinds").Get(ctx, "job", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status.Succeeded != 3 || job.Status.CompletionTime == nil {
		t.Errorf("host job status %+v, want 3 succeeded and a completion time", job.Status)
	}
}

const shopYAML = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret, namespace: shop}
stringData: {token: abc}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1
        env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: web-secret, key: token}}}]
        volumeMounts: [{name: cfg, mountPath: /cfg}]
      volumes: [{name: cfg, configMap: {name: web-config}}]
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: web, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement:
    replicaScheduling:
      type: Divided
      divisionPreference: Weighted
      staticWeights:
      - {targetCluster: {clusterNames: [m1]}, weight: 1}
      - {targetCluster: {clusterNames: [m2]}, weight: 2}
      - {targetCluster: {labelSelector: {matchLabels: {topology.kubernetes.io/region: us}}}, weight: 3}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: OverridePolicy
metadata: {name: us-mirror, namespace: shop}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  rules:
  - targetCluster: {labelSelector: {matchLabels: {topology.kubernetes.io/region: us}}}
    overriders:
      image: [{container: app, registry: mirror.us}]
      labels: {served-from: us}
`

// testDivision: weighted division, an override, dependencies that follow
// the workload, and `kubectl rollout status` on the host across an image
// change.
func (f *fleet) testDivision(t *testing.T) {
	ctx := t.Context()
	f.apply(t, shopYAML)
	f.waitReplicas(t, deploymentsGVR, "shop", "web", map[string]int64{"m1": 1, "m2": 2, "m3": 3}, false)
	for _, m := range f.members {
		d, err := m.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantImage, wantLabel := "nginx:1", ""
		if m.name == "m3" {
			wantImage, wantLabel = "mirror.us/nginx:1", "us"
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != wantImage || d.Labels["served-from"] != wantLabel {
			t.Errorf("%s: image %s labels %v, want image %s served-from=%q", m.name, got, d.Labels, wantImage, wantLabel)
		}
		waitWithin(t, longWait, "dependencies in "+m.name, func(ctx context.Context) (bool, error) {
			cm, err := get(ctx, m, configmapsGVR, "shop", "web-config")
			if err != nil || cm == nil {
				return false, err
			}
			sec, err := get(ctx, m, secretsGVR, "shop", "web-secret")
			return sec != nil, err
		})
	}
	kubectl(t, f.host.env.Kubeconfig, "", "rollout", "status", "-n", "shop", "deployment/web", "--timeout=180s")

	// A new image: the host's rollout status waits for every member.
	kubectl(t, f.host.env.Kubeconfig, "", "set", "image", "-n", "shop", "deployment/web", "app=nginx:2")
	kubectl(t, f.host.env.Kubeconfig, "", "rollout", "status", "-n", "shop", "deployment/web", "--timeout=180s")
	for _, m := range f.members {
		d, err := m.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := "nginx:2"
		if m.name == "m3" {
			want = "mirror.us/nginx:2"
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
			t.Errorf("%s: image %s after the host rollout finished, want %s", m.name, got, want)
		}
		if d.Status.UpdatedReplicas != *d.Spec.Replicas || d.Status.ObservedGeneration < d.Generation {
			t.Errorf("%s: rollout status returned before the member finished: %+v", m.name, d.Status)
		}
	}
	hd, err := f.host.kube.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if hd.Status.UpdatedReplicas != 6 || hd.Status.ReadyReplicas != 6 {
		t.Errorf("host status %+v, want 6 updated and ready", hd.Status)
	}
	// Only the two spec writes moved the generation: the federation's own
	// annotation and status writes must not (rollout status would wait
	// for each of them to be observed).
	if hd.Generation != 2 {
		t.Errorf("host generation %d after one create and one image change, want 2", hd.Generation)
	}
}

// testCapacity divides by available capacity (16-CPU replicas on 32-CPU
// nodes: m1 fits 2, m2 4, m3 6) and checks that the division holds once
// the replicas use that capacity (the object's own replicas count as
// available to it).
func (f *fleet) testCapacity(t *testing.T) {
	ctx := t.Context()
	f.apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: cap}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: big, namespace: cap}
spec:
  replicas: 10
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: app, image: nginx:1, resources: {requests: {cpu: "16"}}}]}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: big, namespace: cap}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: big}]
  placement:
    replicaScheduling: {type: Divided, divisionPreference: AvailableCapacity}
`)
	counts, _ := placement.Divide(10, []placement.Share{{Cluster: "m1", Weight: 2}, {Cluster: "m2", Weight: 4}, {Cluster: "m3", Weight: 6}})
	want := map[string]int64{"m1": int64(counts[0]), "m2": int64(counts[1]), "m3": int64(counts[2])}
	f.waitReplicas(t, deploymentsGVR, "cap", "big", want, true)

	// Once the health probe has seen the replicas use m3's CPU, a new
	// reconcile must keep the same division.
	waitWithin(t, longWait, "m3 capacity to show the replicas", func(ctx context.Context) (bool, error) {
		u, err := f.host.dyn.Resource(v1alpha1.ClustersGVR).Get(ctx, "m3", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var cl v1alpha1.Cluster
		if err := v1alpha1.FromUnstructured(u.Object, &cl); err != nil || cl.Status.Capacity == nil {
			return false, err
		}
		used := 96 - cl.Status.Capacity.Available.Cpu().Value()
		return used >= 16*want["m3"], fmt.Errorf("%d CPUs used", used)
	})
	kubectl(t, f.host.env.Kubeconfig, "", "annotate", "-n", "cap", "deployment/big", "touched=yes")
	for _, m := range f.members {
		waitWithin(t, longWait, "the annotation in "+m.name, func(ctx context.Context) (bool, error) {
			u, err := get(ctx, m, deploymentsGVR, "cap", "big")
			return u != nil && u.GetAnnotations()["touched"] == "yes", err
		})
	}
	for _, m := range f.members {
		u, err := get(ctx, m, deploymentsGVR, "cap", "big")
		if err != nil || u == nil || replicasOf(u) != want[m.name] || u.GetAnnotations()["touched"] != "yes" {
			t.Errorf("%s: %v replicas after a re-reconcile, want %d (err %v)", m.name, u, want[m.name], err)
		}
	}
}

// testHPA: a member HPA that targets a propagated Deployment keeps
// control of its replicas.
func (f *fleet) testHPA(t *testing.T) {
	ctx := t.Context()
	f.apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: hpa}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: scaled, namespace: hpa}
spec:
  replicas: 2
  selector: {matchLabels: {app: scaled}}
  template:
    metadata: {labels: {app: scaled}}
    spec: {containers: [{name: app, image: nginx:1, resources: {requests: {cpu: 10m}}}]}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: scaled, namespace: hpa}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: scaled}]
  placement: {clusterAffinity: {clusterNames: [m1]}}
`)
	f.waitReplicas(t, deploymentsGVR, "hpa", "scaled", map[string]int64{"m1": 2}, false)
	m1 := f.member("m1")
	kubectl(t, m1.env.Kubeconfig, `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: scaled, namespace: hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: scaled}
  minReplicas: 4
  maxReplicas: 6
`, "apply", "-f", "-")
	f.waitReplicas(t, deploymentsGVR, "hpa", "scaled", map[string]int64{"m1": 4}, false)
	waitWithin(t, longWait, "the breakdown to name the HPA", func(ctx context.Context) (bool, error) {
		bs, err := breakdownOf(ctx, f, deploymentsGVR, "hpa", "scaled")
		if err != nil {
			return false, err
		}
		e := entry(bs, "m1")
		return e != nil && e.ReplicasFrom == "hpa/scaled" && e.Replicas != nil && *e.Replicas == 4, fmt.Errorf("breakdown %+v", bs)
	})
	// A host change is propagated without taking the replicas back.
	kubectl(t, f.host.env.Kubeconfig, "", "annotate", "-n", "hpa", "deployment/scaled", "touched=yes")
	waitWithin(t, longWait, "the annotation in m1", func(ctx context.Context) (bool, error) {
		u, err := get(ctx, m1, deploymentsGVR, "hpa", "scaled")
		return u != nil && u.GetAnnotations()["touched"] == "yes", err
	})
	u, err := get(ctx, m1, deploymentsGVR, "hpa", "scaled")
	if err != nil || u == nil || replicasOf(u) != 4 {
		t.Errorf("m1 replicas after a host change: %v (err %v), want the HPA's 4", u, err)
	}
}

// testDrift: a member copy changed by hand is put back.
func (f *fleet) testDrift(t *testing.T) {
	ctx := t.Context()
	m2 := f.member("m2")
	cm, err := m2.kube.CoreV1().ConfigMaps("kinds").Get(ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["greeting"] = "changed by hand"
	if _, err := m2.kube.CoreV1().ConfigMaps("kinds").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, longWait, "the drift to be corrected", func(ctx context.Context) (bool, error) {
		cm, err := m2.kube.CoreV1().ConfigMaps("kinds").Get(ctx, "cm", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return cm.Data["greeting"] == "hello", fmt.Errorf("greeting %q", cm.Data["greeting"])
	})
}

// testAdoption: objects that already exist in a member are adopted when
// equal (Adopt), left alone when they differ (Adopt) or always (Abort),
// and taken over with Overwrite.
func (f *fleet) testAdoption(t *testing.T) {
	ctx := t.Context()
	m1 := f.member("m1")
	if _, err := m1.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "adopt"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"equal": "1", "differs": "2", "aborted": "1", "overwritten": "2"} {
		if _, err := m1.kube.CoreV1().ConfigMaps("adopt").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"a": v}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var y strings.Builder
	y.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: adopt}\n")
	for _, name := range []string{"equal", "differs", "aborted", "overwritten"} {
		fmt.Fprintf(&y, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: adopt}\ndata: {a: \"1\"}\n", name)
	}
	for _, p := range []struct{ name, res, sel string }{
		{"adopt", "Adopt", "[{apiVersion: v1, kind: ConfigMap, name: equal}, {apiVersion: v1, kind: ConfigMap, name: differs}]"},
		{"abort", "Abort", "[{apiVersion: v1, kind: ConfigMap, name: aborted}]"},
		{"overwrite", "Overwrite", "[{apiVersion: v1, kind: ConfigMap, name: overwritten}]"},
	} {
		fmt.Fprintf(&y, "---\napiVersion: federation.keelson.dev/v1alpha1\nkind: PropagationPolicy\nmetadata: {name: %s, namespace: adopt}\nspec:\n  conflictResolution: %s\n  resourceSelectors: %s\n  placement: {clusterAffinity: {clusterNames: [m1]}}\n", p.name, p.res, p.sel)
	}
	f.apply(t, y.String())

	for name, want := range map[string]struct {
		managed  bool
		value    string
		conflict bool
	}{
		"equal": {true, "1", false}, "differs": {false, "2", true}, "aborted": {false, "1", true}, "overwritten": {true, "1", false},
	} {
		waitWithin(t, longWait, "configmap "+name, func(ctx context.Context) (bool, error) {
			bs, err := breakdownOf(ctx, f, configmapsGVR, "adopt", name)
			if err != nil {
				return false, err
			}
			e := entry(bs, "m1")
			if e == nil {
				return false, fmt.Errorf("no m1 entry in %+v", bs)
			}
			if gotConflict := strings.Contains(e.Error, "conflict"); gotConflict != want.conflict || e.Applied == want.conflict {
				return false, fmt.Errorf("breakdown %+v", e)
			}
			cm, err := m1.kube.CoreV1().ConfigMaps("adopt").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			managed := cm.Labels[v1alpha1.LabelManaged] == "true"
			return managed == want.managed && cm.Data["a"] == want.value, fmt.Errorf("member copy labels %v data %v", cm.Labels, cm.Data)
		})
	}
	// Deleting the host object removes only what keelson took over.
	for _, name := range []string{"equal", "aborted"} {
		if err := f.host.kube.CoreV1().ConfigMaps("adopt").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitWithin(t, longWait, "the adopted copy to go with the host object", func(ctx context.Context) (bool, error) {
		_, err := m1.kube.CoreV1().ConfigMaps("adopt").Get(ctx, "equal", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	if _, err := m1.kube.CoreV1().ConfigMaps("adopt").Get(ctx, "aborted", metav1.GetOptions{}); err != nil {
		t.Errorf("the member's own object was touched by a host delete: %v", err)
	}
}

const failoverYAML = `apiVersion: v1
kind: Namespace
metadata: {name: fo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: back, namespace: fo}
spec:
  replicas: 6
  selector: {matchLabels: {app: back}}
  template:
    metadata: {labels: {app: back}}
    spec: {containers: [{name: app, image: nginx:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: away, namespace: fo}
spec:
  replicas: 3
  selector: {matchLabels: {app: away}}
  template:
    metadata: {labels: {app: away}}
    spec: {containers: [{name: app, image: nginx:1}]}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: back, namespace: fo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: back}]
  placement: {replicaScheduling: {type: Divided}}
  failover: {tolerationSeconds: 1, rebalance: true}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: away, namespace: fo}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: away}]
  placement: {replicaScheduling: {type: Divided}}
  failover: {tolerationSeconds: 1}
`

// testFailover: a member made unhealthy (its store stopped) and one made
// unreachable (its apiserver stopped with SIGSTOP) lose their replicas to
// the healthy members, which run them before the old copies go; with
// rebalance the replicas come back on recovery, without it they stay
// away. Two members down at once trips the fleet brake.
func (f *fleet) testFailover(t *testing.T) {
	ctx := t.Context()
	m2, m3 := f.member("m2"), f.member("m3")
	f.apply(t, failoverYAML)
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 2, "m2": 2, "m3": 2}, true)
	f.waitReplicas(t, deploymentsGVR, "fo", "away", map[string]int64{"m1": 1, "m2": 1, "m3": 1}, true)

	// Unhealthy: m3's store stops; its apiserver answers but is not ready.
	if err := m3.env.Store.Stop(); err != nil {
		t.Fatal(err)
	}
	storeRunning := false
	t.Cleanup(func() {
		if !storeRunning {
			_ = m3.env.Store.Start(context.Background())
		}
	})
	f.waitCluster(t, "m3", true, false)
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 3, "m2": 3}, true)
	f.waitReplicas(t, deploymentsGVR, "fo", "away", map[string]int64{"m1": 2, "m2": 1}, true)
	bs, err := breakdownOf(ctx, f, deploymentsGVR, "fo", "back")
	if err != nil {
		t.Fatal(err)
	}
	if e := entry(bs, "m3"); e == nil || e.Applied {
		t.Errorf("m3 during failover: %+v, want an entry for the copy that could not be removed yet", e)
	}

	if err := m3.env.Store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	storeRunning = true
	if err := m3.env.WaitAPIServersReady(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitCluster(t, "m3", true, true)
	// Rebalance brings "back" home; "away" leaves m3 for good, once the
	// replacements run.
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 2, "m2": 2, "m3": 2}, true)
	f.waitReplicas(t, deploymentsGVR, "fo", "away", map[string]int64{"m1": 2, "m2": 1, "m3": -1}, true)

	// Unreachable: m2's apiserver is stopped.
	api := m2.env.APIServers[0]
	if err := api.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = api.Resume()
		}
	})
	f.waitCluster(t, "m2", false, false)
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 3, "m3": 3}, true)
	if err := api.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	f.waitCluster(t, "m2", true, true)
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 2, "m2": 2, "m3": 2}, true)

	// The brake: two of three unreachable at once moves nothing. The two
	// members are seen to fail a probe or two apart; a toleration longer
	// than that keeps the first from being evicted alone before the
	// second fails.
	kubectl(t, f.host.env.Kubeconfig, "", "patch", "-n", "fo", "propagationpolicy/back", "--type=merge", "-p", `{"spec":{"failover":{"tolerationSeconds":5}}}`)
	api3 := m3.env.APIServers[0]
	for _, a := range []*testenv.APIServer{api, api3} {
		if err := a.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Resume() })
	}
	f.waitCluster(t, "m2", false, false)
	f.waitCluster(t, "m3", false, false)
	waitWithin(t, longWait, "the brake to hold the evictions", func(ctx context.Context) (bool, error) {
		bs, err := breakdownOf(ctx, f, deploymentsGVR, "fo", "back")
		if err != nil {
			return false, err
		}
		for _, cl := range []string{"m2", "m3"} {
			if e := entry(bs, cl); e == nil || !strings.Contains(e.Failover, "fleet brake") || e.Replicas == nil || *e.Replicas != 2 {
				return false, fmt.Errorf("breakdown %+v", bs)
			}
		}
		return true, nil
	})
	if u, err := get(ctx, f.member("m1"), deploymentsGVR, "fo", "back"); err != nil || u == nil || replicasOf(u) != 2 {
		t.Errorf("m1 under the brake: %v (err %v), want its 2 replicas unchanged", u, err)
	}
	if v := gaugeValue(t, f.reg, "keelson_federation_failover_brake", nil); v != 1 {
		t.Errorf("failover_brake gauge %v under the brake, want 1", v)
	}
	for _, a := range []*testenv.APIServer{api, api3} {
		if err := a.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	f.waitCluster(t, "m2", true, true)
	f.waitCluster(t, "m3", true, true)
	f.waitReplicas(t, deploymentsGVR, "fo", "back", map[string]int64{"m1": 2, "m2": 2, "m3": 2}, true)
}

// testUnjoin: unjoining a member orphans its objects; deleting the host
// object afterwards removes the copies from the members still joined only.
func (f *fleet) testUnjoin(t *testing.T) {
	ctx := t.Context()
	m3 := f.member("m3")
	if err := controller.Unjoin(ctx, f.host.env.Config, "m3"); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, longWait, "m3 to leave the breakdown", func(ctx context.Context) (bool, error) {
		bs, err := breakdownOf(ctx, f, deploymentsGVR, "kinds", "dep")
		if err != nil {
			return false, err
		}
		return entry(bs, "m3") == nil && len(bs) == 2, fmt.Errorf("breakdown %+v", bs)
	})
	if err := f.host.kube.AppsV1().Deployments("kinds").Delete(ctx, "dep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitReplicas(t, deploymentsGVR, "kinds", "dep", map[string]int64{"m1": -1, "m2": -1}, false)
	waitWithin(t, longWait, "the host object to go", func(ctx context.Context) (bool, error) {
		u, err := get(ctx, f.host, deploymentsGVR, "kinds", "dep")
		return u == nil, err
	})
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{deploymentsGVR, "dep"}, {configmapsGVR, "cm"}, {servicesGVR, "svc"}} {
		if u, err := get(ctx, m3, o.gvr, "kinds", o.name); err != nil || u == nil {
			t.Errorf("m3 lost %s kinds/%s after unjoin (err %v): unjoin must orphan", o.gvr.Resource, o.name, err)
		}
	}
}

// testMetrics: the metrics operators look at are there.
func (f *fleet) testMetrics(t *testing.T) {
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	if h := byName["keelson_federation_propagation_latency_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() == 0 {
		t.Errorf("propagation latency histogram empty: %v", h)
	}
	if byName["keelson_federation_queue_depth"] == nil {
		t.Error("no queue depth gauge")
	}
	if v := gaugeValue(t, f.reg, "keelson_federation_cluster_condition", map[string]string{"cluster": "m1", "condition": "Ready"}); v != 1 {
		t.Errorf("cluster_condition{m1,Ready} = %v, want 1", v)
	}
	// One hand edit was made (in m2); anything more would be the drift
	// check mistaking member defaults for changes, and re-applying in a
	// loop.
	drift := map[string]float64{}
	if mf := byName["keelson_federation_drift_corrections_total"]; mf != nil {
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				drift[lp.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	if drift["m2"] < 1 || drift["m1"]+drift["m3"] > 0 || drift["m2"] > 2 {
		t.Errorf("drift_corrections_total by cluster %v, want the one hand edit in m2 only", drift)
	}
}

// gaugeValue returns the value of the gauge name with the given labels
// (-1 if absent).
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/keelson-dev/keelson/internal/testenv"
)

const kwokNodes = 3

// stores returns the stores to run against.
func stores(t *testing.T) []testenv.StoreKind {
	v := os.Getenv("KEELSON_INTEGRATION_STORES")
	if v == "" {
		return []testenv.StoreKind{testenv.StoreEtcd, testenv.StoreKeelson}
	}
	var out []testenv.StoreKind
	for s := range strings.SplitSeq(v, ",") {
		k, err := testenv.ParseStoreKind(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("KEELSON_INTEGRATION_STORES: %v", err)
		}
		out = append(out, k)
	}
	return out
}

func TestKubernetesOnStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver, controllers and a store; skipped with -short")
	}
	for _, store := range stores(t) {
		t.Run(string(store), func(t *testing.T) {
			env := testenv.Start(t, testenv.Options{
				Store:             store,
				ControllerManager: true,
				Scheduler:         true,
				KwokNodes:         kwokNodes,
			})
			client, err := env.Clientset()
			if err != nil {
				t.Fatal(err)
			}
			// Subtests run one after another against the same cluster; the
			// store restart comes last.
			t.Run("Namespaces", func(t *testing.T) { testNamespaces(t, client) })
			t.Run("DeploymentRollout", func(t *testing.T) { testDeploymentRollout(t, client) })
			t.Run("ConfigMapWatch", func(t *testing.T) { testConfigMapWatch(t, client) })
			t.Run("Pagination", func(t *testing.T) { testPagination(t, client) })
			t.Run("StoreCrashUnderLoad", func(t *testing.T) { testStoreCrashUnderLoad(t, env, client) })
		})
	}
}

// poll calls cond every interval until it returns true, fails with its last
// error after timeout.
func poll(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %v)", what, err, last)
	}
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func testNamespaces(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	names := []string{"it-ns-a", "it-ns-b", "it-ns-c"}
	for _, n := range names {
		createNamespace(t, client, n)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "it-ns-a"}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("creating it-ns-a twice: got %v, want AlreadyExists", err)
	}
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, ns := range list.Items {
		have[ns.Name] = true
	}
	for _, n := range append(names, "default", "kube-system") {
		if !have[n] {
			t.Errorf("namespace %s missing from list", n)
		}
	}
	// Labels round-trip through an update.
	ns, err := client.CoreV1().Namespaces().Get(ctx, "it-ns-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels = map[string]string{"team": "keelson"}
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "team=keelson"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Items) != 1 || sel.Items[0].Name != "it-ns-b" {
		t.Errorf("label selector team=keelson matched %d namespaces", len(sel.Items))
	}
	// Deletion goes through the namespace controller's finalizer.
	if err := client.CoreV1().Namespaces().Delete(ctx, "it-ns-c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "namespace it-ns-c to be deleted", 90*time.Second, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, "it-ns-c", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

func testDeploymentRollout(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	const ns = "it-deploy"
	createNamespace(t, client, ns)
	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, client, ns, "web", replicas)
	checkPods(t, client, ns, "nginx:1.27", int(replicas))

	// A new image rolls out through a second ReplicaSet.
	d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	if _, err := client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, client, ns, "web", replicas)
	rss, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Fatalf("got %d ReplicaSets, want 2 (old and new)", len(rss.Items))
	}
	for _, rs := range rss.Items {
		if len(rs.OwnerReferences) != 1 || rs.OwnerReferences[0].Name != "web" {
			t.Errorf("ReplicaSet %s owner references = %v", rs.Name, rs.OwnerReferences)
		}
		want := int32(0)
		if rs.Spec.Template.Spec.Containers[0].Image == "nginx:1.28" {
			want = replicas
		}
		if *rs.Spec.Replicas != want {
			t.Errorf("ReplicaSet %s (%s) has %d replicas, want %d", rs.Name, rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas, want)
		}
	}
	// Old pods are deleted (kwok finishes their deletion).
	poll(t, "old pods to go", 90*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		if len(pods.Items) != int(replicas) {
			return false, fmt.Errorf("%d pods", len(pods.Items))
		}
		return true, nil
	})
	checkPods(t, client, ns, "nginx:1.28", int(replicas))
}

// waitRolledOut waits until the Deployment's controller observed its latest
// generation and all replicas are updated and ready.
func waitRolledOut(t *testing.T, client kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	poll(t, "deployment "+name+" to roll out", 120*time.Second, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != replicas || s.ReadyReplicas != replicas ||
			s.AvailableReplicas != replicas || s.Replicas != replicas {
			return false, fmt.Errorf("status: generation %d/%d, replicas %d updated %d ready %d available %d",
				s.ObservedGeneration, d.Generation, s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
		}
		return true, nil
	})
}

// checkPods wants n Running pods with image, each on a kwok node.
func checkPods(t *testing.T, client kubernetes.Interface, ns, image string, n int) {
	t.Helper()
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		if p.Spec.Containers[0].Image != image || p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			continue
		}
		if !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
			t.Errorf("pod %s is on node %q, want a kwok node", p.Name, p.Spec.NodeName)
		}
		running++
	}
	if running != n {
		t.Errorf("%d running pods with %s, want %d", running, image, n)
	}
}

func testConfigMapWatch(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	const ns, n = "it-watch", 50
	createNamespace(t, client, ns)
	cms := client.CoreV1().ConfigMaps(ns)
	list, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	w, err := cms.Watch(wctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "it=watch"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	var want []string
	for i := range n {
		name := fmt.Sprintf("cm-%03d", i)
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"it": "watch"}},
			Data:       map[string]string{"i": strconv.Itoa(i)},
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "ADDED "+name)
	}
	cm, err := cms.Get(ctx, "cm-007", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["i"] = "seven"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "MODIFIED cm-007")
	if err := cms.Delete(ctx, "cm-011", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "DELETED cm-011")
	// A ConfigMap outside the selector produces no event.
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var got []string
	lastRV := int64(0)
	for len(got) < len(want) {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed after %d of %d events: %v", len(got), len(want), got)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watch error: %v", apierrors.FromObject(ev.Object))
			}
			obj := ev.Object.(*corev1.ConfigMap)
			rv, err := strconv.ParseInt(obj.ResourceVersion, 10, 64)
			if err != nil {
				t.Fatalf("resourceVersion %q: %v", obj.ResourceVersion, err)
			}
			if rv <= lastRV {
				t.Errorf("event %s %s has resourceVersion %d after %d", ev.Type, obj.Name, rv, lastRV)
			}
			lastRV = rv
			got = append(got, string(ev.Type)+" "+obj.Name)
		case <-wctx.Done():
			t.Fatalf("got %d of %d watch events before timeout; last: %v", len(got), len(want), got[max(0, len(got)-3):])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("watch events differ:\n got %v\nwant %v", got, want)
	}
}

func testPagination(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	const ns, n, pageSize = "it-page", 1200, 100
	createNamespace(t, client, ns)
	cms := client.CoreV1().ConfigMaps(ns)
	createConfigMaps(t, cms, "page", n)

	seen := map[string]int{}
	opts := metav1.ListOptions{Limit: pageSize, LabelSelector: "it=page"}
	pages := 0
	for {
		list, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatalf("listing page %d: %v", pages+1, err)
		}
		pages++
		if len(list.Items) > pageSize {
			t.Fatalf("page %d has %d items, limit %d", pages, len(list.Items), pageSize)
		}
		for _, cm := range list.Items {
			seen[cm.Name]++
		}
		if pages == 1 {
			// Objects created after the first page are not part of this
			// list: continuing reads the first page's revision.
			createConfigMaps(t, cms, "late", 20)
		}
		if list.Continue == "" {
			if list.RemainingItemCount != nil && *list.RemainingItemCount != 0 {
				t.Errorf("last page has remainingItemCount %d", *list.RemainingItemCount)
			}
			break
		}
		opts.Continue = list.Continue
	}
	if len(seen) != n {
		t.Errorf("paginated list saw %d distinct ConfigMaps, want %d", len(seen), n)
	}
	for name, c := range seen {
		if c != 1 {
			t.Errorf("%s seen %d times", name, c)
		}
		if !strings.HasPrefix(name, "page-") {
			t.Errorf("%s is not part of the listed snapshot", name)
		}
	}
	// A page may hold fewer items than the limit, never more.
	if want := n / pageSize; pages < want {
		t.Errorf("%d pages, want at least %d", pages, want)
	}

	// A fresh unpaginated list sees the late objects too.
	all, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "it in (page,late)"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != n+20 {
		t.Errorf("full list has %d items, want %d", len(all.Items), n+20)
	}
}

// createConfigMaps creates n ConfigMaps prefix-00000… with label it=prefix,
// from 16 goroutines.
func createConfigMaps(t *testing.T, cms interface {
	Create(context.Context, *corev1.ConfigMap, metav1.CreateOptions) (*corev1.ConfigMap, error)
}, prefix string, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%05d", prefix, i), Labels: map[string]string{"it": prefix}},
					Data:       map[string]string{"payload": strings.Repeat("x", 256)},
				}
				if _, err := cms.Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("creating %s: %w", cm.Name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testStoreCrashUnderLoad(t *testing.T, env *testenv.Env, client kubernetes.Interface) {
	ctx := t.Context()
	const ns, writers = "it-crash", 4
	createNamespace(t, client, ns)
	cms := client.CoreV1().ConfigMaps(ns)

	// A watch through the apiserver, started before the crash, must carry
	// on afterwards: RetryWatcher re-watches from the last revision it saw
	// if the stream breaks, and fails on "410 Gone".
	start, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	rw, err := watchtools.NewRetryWatcherWithContext(wctx, start.ResourceVersion, configMapWatcher{cms})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Stop()
	var (
		watchMu   sync.Mutex
		watched   = map[string]bool{}
		watchErrs []string
	)
	go func() {
		for ev := range rw.ResultChan() {
			watchMu.Lock()
			switch ev.Type {
			case watch.Added:
				watched[ev.Object.(*corev1.ConfigMap).Name] = true
			case watch.Error:
				watchErrs = append(watchErrs, apierrors.FromObject(ev.Object).Error())
			}
			watchMu.Unlock()
		}
	}()

	var (
		mu     sync.Mutex
		acked  []string
		failed atomic.Int64
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("load-%d-%06d", w, i)
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				_, err := cms.Create(rctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Data:       map[string]string{"writer": strconv.Itoa(w)},
				}, metav1.CreateOptions{})
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		})
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()

	poll(t, "writers to get 200 creates acknowledged", 60*time.Second, func(context.Context) (bool, error) {
		return ackedCount() >= 200, nil
	})
	before := ackedCount()
	env.Store.Kill()
	crashedAt := time.Now()
	if err := env.Store.Start(ctx); err != nil {
		t.Fatalf("restarting store: %v", err)
	}
	if err := env.WaitAPIServersReady(ctx); err != nil {
		t.Fatalf("apiserver after store restart: %v", err)
	}
	poll(t, "writes to succeed again after the restart", 90*time.Second, func(context.Context) (bool, error) {
		return ackedCount() >= before+200, nil
	})
	recovered := time.Since(crashedAt)
	stopWriters()

	mu.Lock()
	want := slices.Clone(acked)
	mu.Unlock()
	have, err := testenv.ConfigMapNames(ctx, cms)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	missing := testenv.Missing(want, have)
	for _, name := range missing[:min(len(missing), 10)] {
		t.Errorf("acknowledged ConfigMap %s is missing after the store crash", name)
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged ConfigMaps missing", len(missing), len(want))
	}
	poll(t, "the watch to deliver every acknowledged create", 60*time.Second, func(context.Context) (bool, error) {
		watchMu.Lock()
		defer watchMu.Unlock()
		if len(watchErrs) > 0 {
			t.Fatalf("watch across the store crash failed: %v", watchErrs)
		}
		n := 0
		for _, name := range want {
			if !watched[name] {
				n++
			}
		}
		if n > 0 {
			return false, fmt.Errorf("%d acknowledged creates not seen by the watch", n)
		}
		return true, nil
	})

	t.Logf("store crash: %d creates acknowledged (%d before the kill), %d failed, %d present; writes recovered %s after the kill",
		len(want), before, failed.Load(), len(have), recovered.Round(time.Millisecond))
}

// configMapWatcher adapts a ConfigMap client to cache.WatcherWithContext.
type configMapWatcher struct {
	cms typedcorev1.ConfigMapInterface
}

func (w configMapWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return w.cms.Watch(ctx, opts)
}

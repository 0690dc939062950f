package ha

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/keelson-dev/keelson/internal/testenv"
)

// TestTwoAPIServersTwoStores runs two kube-apiservers, A on store instance 0
// and B on store instance 1, over one PostgreSQL database.
func TestTwoAPIServersTwoStores(t *testing.T) {
	skipShort(t)
	env := testenv.Start(t, testenv.Options{
		Backend:         testenv.NewDatabase(t, testenv.PostgresURL(), "keelson_ha"),
		StoreReplicas:   2,
		APIServers:      2,
		APIServerStores: testenv.StoresSpread,
	})
	var clients [2]*kubernetes.Clientset
	for i, a := range env.APIServers {
		c, err := kubernetes.NewForConfig(a.Config)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	a, b := clients[0], clients[1]
	if _, err := a.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ha"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("ReadThroughOther", func(t *testing.T) { testReadThroughOther(t, a.CoreV1().ConfigMaps("ha"), b.CoreV1().ConfigMaps("ha")) })
	t.Run("StaleUpdateConflicts", func(t *testing.T) {
		testStaleUpdate(t, a.CoreV1().ConfigMaps("ha"), b.CoreV1().ConfigMaps("ha"))
	})
	t.Run("StoreKillUnderLoad", func(t *testing.T) { testAPIServerStoreKill(t, env, a, b) })
}

// testReadThroughOther creates ConfigMaps through A and reads each through
// B at once (a quorum read: no waiting), lists them through B, and checks
// that a watch through B, started before, delivers each creation once, in
// order.
func testReadThroughOther(t *testing.T, a, b typedcorev1.ConfigMapInterface) {
	ctx := t.Context()
	const n = 30
	start, err := b.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := b.Watch(wctx, metav1.ListOptions{ResourceVersion: start.ResourceVersion, LabelSelector: "ha=read"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	created := map[string]string{} // name → resourceVersion
	var order []string
	for i := range n {
		name := fmt.Sprintf("read-%03d", i)
		cm, err := a.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"ha": "read"}},
			Data:       map[string]string{"i": strconv.Itoa(i)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating %s through A: %v", name, err)
		}
		created[name] = cm.ResourceVersion
		order = append(order, name)
		got, err := b.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading %s through B right after its creation through A: %v", name, err)
		}
		if got.ResourceVersion != cm.ResourceVersion || got.Data["i"] != strconv.Itoa(i) {
			t.Errorf("%s through B: resourceVersion %s data %v, through A: %s", name, got.ResourceVersion, got.Data, cm.ResourceVersion)
		}
	}
	list, err := b.List(ctx, metav1.ListOptions{LabelSelector: "ha=read"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != n {
		t.Errorf("list through B: %d ConfigMaps, want %d", len(list.Items), n)
	}
	for _, cm := range list.Items {
		if created[cm.Name] != cm.ResourceVersion {
			t.Errorf("list through B: %s at resourceVersion %s, created at %s", cm.Name, cm.ResourceVersion, created[cm.Name])
		}
	}
	var got []string
	for len(got) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch through B closed after %d of %d events", len(got), n)
			}
			if ev.Type != watch.Added {
				t.Fatalf("watch through B: %s event (%v), want ADDED", ev.Type, ev.Object)
			}
			cm := ev.Object.(*corev1.ConfigMap)
			if created[cm.Name] != cm.ResourceVersion {
				t.Errorf("watch through B: %s at resourceVersion %s, created at %s", cm.Name, cm.ResourceVersion, created[cm.Name])
			}
			got = append(got, cm.Name)
		case <-wctx.Done():
			t.Fatalf("watch through B: %d of %d events before the timeout", len(got), n)
		}
	}
	for i := range order {
		if got[i] != order[i] {
			t.Fatalf("watch through B delivered %v, created in order %v", got, order)
		}
	}
}

// testStaleUpdate updates a ConfigMap through A, then through B with the
// resourceVersion from before: Conflict. A fresh update through B succeeds
// and A reads it.
func testStaleUpdate(t *testing.T, a, b typedcorev1.ConfigMapInterface) {
	ctx := t.Context()
	cm, err := a.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "stale"}, Data: map[string]string{"v": "0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := b.Get(ctx, "stale", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["v"] = "a"
	if _, err := a.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update through A: %v", err)
	}
	stale.Data["v"] = "b"
	_, err = b.Update(ctx, stale, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("update through B with resourceVersion %s after an update through A: got %v, want Conflict", stale.ResourceVersion, err)
	}
	fresh, err := b.Get(ctx, "stale", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Data["v"] != "a" {
		t.Errorf("through B after A's update: v=%q, want a", fresh.Data["v"])
	}
	fresh.Data["v"] = "b"
	updated, err := b.Update(ctx, fresh, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update through B with the current resourceVersion: %v", err)
	}
	got, err := a.Get(ctx, "stale", metav1.GetOptions{})
	if err != nil || got.Data["v"] != "b" || got.ResourceVersion != updated.ResourceVersion {
		t.Errorf("through A after B's update: %v %v, want v=b at %s", got, err, updated.ResourceVersion)
	}
}

// testAPIServerStoreKill creates ConfigMaps through both apiservers, kills
// B's store instance with SIGKILL, checks A carries on, restarts the
// instance and checks B recovers; then every acknowledged ConfigMap is
// listed through both, and a watch through B, started before the kill,
// delivered each creation exactly once.
func testAPIServerStoreKill(t *testing.T, env *testenv.Env, a, b *kubernetes.Clientset) {
	ctx := t.Context()
	const ns = "ha-load"
	createNamespace(t, ns, a, b)
	cmsA, cmsB := a.CoreV1().ConfigMaps(ns), b.CoreV1().ConfigMaps(ns)
	load := startKubeLoad(t, cmsB, cmsA, cmsB)
	defer load.stop()

	load.waitMore(t, "creates through B before the kill", 1, 100, time.Minute)
	env.Stores[1].Kill()
	killed := time.Now()
	load.waitMore(t, "creates through A while B's store is down", 0, 100, time.Minute)
	if err := env.Stores[1].Start(ctx); err != nil {
		t.Fatalf("restarting store 1: %v", err)
	}
	if err := env.APIServers[1].WaitReady(ctx); err != nil {
		t.Fatalf("apiserver B after its store returned: %v", err)
	}
	load.waitMore(t, "creates through B after its store returned", 1, 100, 90*time.Second)
	t.Logf("B's writes recovered %s after the kill", time.Since(killed).Round(time.Millisecond))
	load.stop()
	load.verify(t, cmsA, cmsB)
}

// configMapWatcher adapts a ConfigMap client to cache.WatcherWithContext.
type configMapWatcher struct {
	cms typedcorev1.ConfigMapInterface
}

func (w configMapWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return w.cms.Watch(ctx, opts)
}

// TestAPIServerDatabaseFaults runs kube-apiserver on a keelson store over a
// private database server and, while ConfigMaps are created through the
// apiserver, restarts the database cleanly and then crashes it (SIGKILL).
// After each fault creates succeed again; at the end every acknowledged
// ConfigMap is listed and a watch started before the first fault delivered
// each creation exactly once.
func TestAPIServerDatabaseFaults(t *testing.T) {
	skipShort(t)
	for _, db := range []database{{"postgres", privatePostgres}, {"mariadb", privateMariaDB}} {
		t.Run(db.name, func(t *testing.T) {
			base, server := db.base(t)
			env := testenv.Start(t, testenv.Options{
				Backend: testenv.NewDatabase(t, base, "keelson_ha"),
			})
			c, err := kubernetes.NewForConfig(env.APIServers[0].Config)
			if err != nil {
				t.Fatal(err)
			}
			const ns = "db-fault"
			createNamespace(t, ns, c)
			cms := c.CoreV1().ConfigMaps(ns)
			load := startKubeLoad(t, cms, cms)
			defer load.stop()
			load.waitMore(t, "creates before the first fault", 0, 100, time.Minute)

			for _, fault := range []struct {
				name   string
				inject func(context.Context) error
			}{
				{"restart", server.Restart},
				{"crash", func(ctx context.Context) error { server.Kill(); return server.Start(ctx) }},
			} {
				began := time.Now()
				if err := fault.inject(t.Context()); err != nil {
					t.Fatalf("%s of %s: %v", fault.name, db.name, err)
				}
				load.waitMore(t, "creates after the database "+fault.name, 0, 100, 90*time.Second)
				t.Logf("%s %s: creates through kube-apiserver recovered %s after it began",
					db.name, fault.name, time.Since(began).Round(time.Millisecond))
				if !env.Stores[0].Running() {
					t.Fatalf("the store exited during the database %s (log %s)", fault.name, env.Stores[0].LogPath)
				}
			}
			if err := env.APIServers[0].WaitReady(t.Context()); err != nil {
				t.Errorf("kube-apiserver not ready after the faults: %v", err)
			}
			load.verify(t, cms)
		})
	}
}

package ha

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/keelson-dev/keelson/internal/testenv"
)

// createNamespace creates ns through the first client and waits until
// every client sees it.
func createNamespace(t *testing.T, ns string, clients ...*kubernetes.Clientset) {
	t.Helper()
	if _, err := clients[0].CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[1:] {
		poll(t, "namespace "+ns+" through every apiserver", 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return err == nil, err
		})
	}
}

// kubeLoad creates ConfigMaps through one or more apiservers (two writers
// per apiserver) and records which creates were acknowledged, while a
// RetryWatcher through one apiserver, started before the first create,
// counts the ADDED events it delivers.
type kubeLoad struct {
	stopCh  chan struct{}
	wg      sync.WaitGroup
	stopped bool
	cancel  context.CancelFunc
	rw      *watchtools.RetryWatcher

	mu     sync.Mutex
	acked  [][]string // by apiserver
	failed atomic.Int64

	watchMu   sync.Mutex
	watched   map[string]int
	watchErrs []string
}

func startKubeLoad(t *testing.T, watchVia typedcorev1.ConfigMapInterface, via ...typedcorev1.ConfigMapInterface) *kubeLoad {
	t.Helper()
	ctx := t.Context()
	l := &kubeLoad{stopCh: make(chan struct{}), acked: make([][]string, len(via)), watched: map[string]int{}}
	start, err := watchVia.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.rw, err = watchtools.NewRetryWatcherWithContext(wctx, start.ResourceVersion, configMapWatcher{watchVia})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		for ev := range l.rw.ResultChan() {
			l.watchMu.Lock()
			switch ev.Type {
			case watch.Added:
				l.watched[ev.Object.(*corev1.ConfigMap).Name]++
			case watch.Error:
				l.watchErrs = append(l.watchErrs, apierrors.FromObject(ev.Object).Error())
			}
			l.watchMu.Unlock()
		}
	}()
	for w := range 2 * len(via) {
		i := w % len(via)
		cms := via[i]
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.stopCh:
					return
				default:
				}
				name := fmt.Sprintf("load-%d-%06d", w, n)
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cms.Create(rctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				cancel()
				if err != nil {
					l.failed.Add(1)
					// Back off a little while the store or its database
					// is down instead of spinning on errors.
					select {
					case <-l.stopCh:
						return
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				l.mu.Lock()
				l.acked[i] = append(l.acked[i], name)
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *kubeLoad) count(via int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked[via])
}

// waitMore waits until n more creates through apiserver via are
// acknowledged.
func (l *kubeLoad) waitMore(t *testing.T, what string, via, n int, timeout time.Duration) {
	t.Helper()
	target := l.count(via) + n
	poll(t, what, timeout, func(context.Context) (bool, error) {
		return l.count(via) >= target, fmt.Errorf("%d of %d creates acknowledged, %d failed", l.count(via), target, l.failed.Load())
	})
}

// stop stops the writers (not the watch); it may be called again.
func (l *kubeLoad) stop() {
	if !l.stopped {
		l.stopped = true
		close(l.stopCh)
		l.wg.Wait()
	}
}

// verify stops the writers, lists the ConfigMaps through each of lists and
// checks every acknowledged create is there, then waits for the watch to
// have delivered each acknowledged create exactly once. It stops the watch.
func (l *kubeLoad) verify(t *testing.T, lists ...typedcorev1.ConfigMapInterface) {
	t.Helper()
	l.stop()
	defer func() { l.cancel(); l.rw.Stop() }()
	ctx := t.Context()
	l.mu.Lock()
	var want []string
	for _, a := range l.acked {
		want = append(want, a...)
	}
	l.mu.Unlock()
	for i, cms := range lists {
		have, err := testenv.ConfigMapNames(ctx, cms)
		if err != nil {
			t.Fatalf("apiserver %d: %v", i, err)
		}
		missing := testenv.Missing(want, have)
		for _, name := range missing[:min(len(missing), 5)] {
			t.Errorf("apiserver %d: acknowledged ConfigMap %s is missing", i, name)
		}
		if len(missing) > 0 {
			t.Errorf("apiserver %d: %d of %d acknowledged ConfigMaps missing", i, len(missing), len(want))
		}
	}
	poll(t, "the watch to deliver every acknowledged create", time.Minute, func(context.Context) (bool, error) {
		l.watchMu.Lock()
		defer l.watchMu.Unlock()
		if len(l.watchErrs) > 0 {
			return false, fmt.Errorf("watch errors: %v", l.watchErrs)
		}
		n := 0
		for _, name := range want {
			if l.watched[name] == 0 {
				n++
			}
		}
		return n == 0, fmt.Errorf("%d acknowledged creates not seen yet", n)
	})
	l.watchMu.Lock()
	for name, c := range l.watched {
		if c != 1 {
			t.Errorf("watch delivered ADDED %s %d times", name, c)
		}
	}
	l.watchMu.Unlock()
	counts := make([]int, len(l.acked))
	for i := range l.acked {
		counts[i] = l.count(i)
	}
	t.Logf("%d creates acknowledged (by apiserver %v), %d failed", len(want), counts, l.failed.Load())
}

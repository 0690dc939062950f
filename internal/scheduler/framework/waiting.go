package framework

import (
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

type waitingPods struct {
	mu   sync.RWMutex
	pods map[types.UID]*waitingPod
}

func newWaitingPods() *waitingPods { return &waitingPods{pods: map[types.UID]*waitingPod{}} }

func (w *waitingPods) add(p *waitingPod) {
	w.mu.Lock()
	w.pods[p.pod.UID] = p
	w.mu.Unlock()
}

func (w *waitingPods) get(uid types.UID) *waitingPod {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.pods[uid]
}

func (w *waitingPods) remove(uid types.UID) {
	w.mu.Lock()
	delete(w.pods, uid)
	w.mu.Unlock()
}

func (w *waitingPods) each(fn func(WaitingPod)) {
	w.mu.RLock()
	list := make([]*waitingPod, 0, len(w.pods))
	for _, p := range w.pods {
		list = append(list, p)
	}
	w.mu.RUnlock()
	for _, p := range list {
		fn(p)
	}
}

// waitingPod is a pod some Permit plugins asked to wait, each with its own
// timeout; done receives exactly one status.
type waitingPod struct {
	pod     *v1.Pod
	mu      sync.Mutex
	pending map[string]*time.Timer
	done    chan *Status
	closed  bool
}

func newWaitingPod(pod *v1.Pod, timeouts map[string]time.Duration) *waitingPod {
	w := &waitingPod{pod: pod, pending: map[string]*time.Timer{}, done: make(chan *Status, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, d := range timeouts {
		w.pending[name] = time.AfterFunc(d, func() {
			w.Reject(name, fmt.Sprintf("rejected due to timeout after waiting %v at plugin %s", d, name))
		})
	}
	return w
}

func (w *waitingPod) Pod() *v1.Pod { return w.pod }

func (w *waitingPod) PendingPlugins() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.pending))
	for n := range w.pending {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (w *waitingPod) Allow(plugin string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.pending[plugin]; ok {
		t.Stop()
		delete(w.pending, plugin)
	}
	if len(w.pending) == 0 && !w.closed {
		w.closed = true
		w.done <- nil
	}
}

func (w *waitingPod) Reject(plugin, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for _, t := range w.pending {
		t.Stop()
	}
	w.closed = true
	w.done <- NewStatus(Unschedulable, msg).WithPlugin(plugin)
}

func (w *waitingPod) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.pending {
		t.Stop()
	}
	w.closed = true
}

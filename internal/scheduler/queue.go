package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// ErrQueueClosed is returned by Pop after Close.
var ErrQueueClosed = errors.New("scheduling queue closed")

// podHeap is a heap of queued pods with an index by UID.
type podHeap struct {
	items []*framework.QueuedPodInfo
	index map[types.UID]int
	less  func(a, b *framework.QueuedPodInfo) bool
}

func newPodHeap(less func(a, b *framework.QueuedPodInfo) bool) *podHeap {
	return &podHeap{index: map[types.UID]int{}, less: less}
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].Pod.UID] = i
	h.index[h.items[j].Pod.UID] = j
}
func (h *podHeap) Push(x any) {
	q := x.(*framework.QueuedPodInfo)
	h.index[q.Pod.UID] = len(h.items)
	h.items = append(h.items, q)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	q := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	delete(h.index, q.Pod.UID)
	return q
}
func (h *podHeap) get(uid types.UID) *framework.QueuedPodInfo {
	if i, ok := h.index[uid]; ok {
		return h.items[i]
	}
	return nil
}
func (h *podHeap) upsert(q *framework.QueuedPodInfo) {
	if i, ok := h.index[q.Pod.UID]; ok {
		h.items[i] = q
		heap.Fix(h, i)
		return
	}
	heap.Push(h, q)
}
func (h *podHeap) remove(uid types.UID) *framework.QueuedPodInfo {
	if i, ok := h.index[uid]; ok {
		return heap.Remove(h, i).(*framework.QueuedPodInfo)
	}
	return nil
}
func (h *podHeap) peek() *framework.QueuedPodInfo {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

// QueueOptions configure a Queue.
type QueueOptions struct {
	Clock          clock.WithTicker
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxInUnschedulable is how long a pod waits for a relevant event
	// before it is retried anyway.
	MaxInUnschedulable time.Duration
	// Less orders the active queue (the profiles' QueueSort plugin).
	Less func(a, b *framework.QueuedPodInfo) bool
	// PreEnqueue returns a non-success status to hold a pod back.
	PreEnqueue func(pod *framework.PodInfo) *framework.Status
	// Events returns, for a pod's profile, the events each plugin
	// registered (nil list: every event).
	Events func(pod *v1.Pod) map[string][]framework.ClusterEvent
	// Owned tells whether this instance owns a new pending pod (nil: every
	// pod). Pods it does not own wait in the foreign set: they are popped
	// only when activeQ is empty and they have waited StealAfter, unless
	// Stealable says no (then only Reassign moves them).
	Owned      func(pod *v1.Pod) bool
	Stealable  func(pod *v1.Pod) bool
	StealAfter time.Duration
	// OwnerOf names the instance that owns a pod (nil: ownership is not
	// tracked per instance). With it, a foreign pod is stolen only when
	// its owner has also made no visible progress (none of its pods left
	// the foreign set, bound or deleted) for StealAfter: an owner working
	// through its backlog is not duplicated by idle instances, whose
	// decisions would only lose the bind race to it.
	OwnerOf func(pod *v1.Pod) string
	// OnSteal is called for each foreign pod popped.
	OnSteal func()
}

// Queue holds pods waiting to be scheduled: activeQ (ready, ordered by
// QueueSort), backoffQ (failed recently, ordered by when their backoff
// ends), unschedulable (waiting for a cluster event that may help) and
// gated (held by PreEnqueue).
type Queue struct {
	opts          QueueOptions
	mu            sync.Mutex
	cond          *sync.Cond
	active        *podHeap
	backoff       *podHeap
	unschedulable map[types.UID]*framework.QueuedPodInfo
	gated         map[types.UID]*framework.QueuedPodInfo
	// foreign holds pending pods another instance owns that may be stolen
	// (ordered by when they were first seen); held those that may not.
	foreign *podHeap
	held    map[types.UID]*framework.QueuedPodInfo
	// cycle counts pops; moveCycle is the cycle of the last event that
	// moved pods. A pod whose attempt began before an event is retried
	// (backoff) rather than parked, so the event is not lost.
	cycle     int64
	moveCycle int64
	closed    bool
	// stealFloor: a foreign pod's wait counts from no earlier than this
	// (when scheduling began), so that pods which arrived while every
	// instance was still starting are not stolen from their owners.
	stealFloor time.Time
	// progress is, per owning instance (OwnerOf), when one of its pods
	// last left the foreign set.
	progress map[string]time.Time
}

// SetStealFloor makes foreign pods' waits count from t at the earliest.
func (q *Queue) SetStealFloor(t time.Time) {
	q.mu.Lock()
	q.stealFloor = t
	q.mu.Unlock()
}

// NewQueue returns an empty queue.
func NewQueue(opts QueueOptions) *Queue {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	q := &Queue{
		opts:          opts,
		active:        newPodHeap(opts.Less),
		unschedulable: map[types.UID]*framework.QueuedPodInfo{},
		gated:         map[types.UID]*framework.QueuedPodInfo{},
		held:          map[types.UID]*framework.QueuedPodInfo{},
		progress:      map[string]time.Time{},
		foreign:       newPodHeap(func(a, b *framework.QueuedPodInfo) bool { return a.Timestamp.Before(b.Timestamp) }),
		moveCycle:     -1,
	}
	q.backoff = newPodHeap(func(a, b *framework.QueuedPodInfo) bool { return q.backoffEnd(a).Before(q.backoffEnd(b)) })
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *Queue) backoffDuration(p *framework.QueuedPodInfo) time.Duration {
	d := q.opts.InitialBackoff
	for i := 1; i < p.Attempts && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, q.opts.MaxBackoff)
}

func (q *Queue) backoffEnd(p *framework.QueuedPodInfo) time.Time {
	return p.Timestamp.Add(q.backoffDuration(p))
}

func (q *Queue) isBackingOff(p *framework.QueuedPodInfo) bool {
	return p.Attempts > 0 && q.backoffEnd(p).After(q.opts.Clock.Now())
}

// pushActiveLocked runs PreEnqueue and places p in activeQ or gated.
func (q *Queue) pushActiveLocked(p *framework.QueuedPodInfo) {
	if q.opts.PreEnqueue != nil {
		if s := q.opts.PreEnqueue(p.PodInfo); !s.IsSuccess() {
			p.Gated = true
			p.UnschedulablePlugins = map[string]struct{}{s.Plugin(): {}}
			q.gated[p.Pod.UID] = p
			return
		}
	}
	p.Gated = false
	delete(q.gated, p.Pod.UID)
	q.active.upsert(p)
	q.cond.Broadcast()
}

// Add queues a new pending pod.
func (q *Queue) Add(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.opts.Clock.Now()
	p := &framework.QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: now}
	if q.opts.Owned != nil && !q.opts.Owned(pod) {
		q.addForeignLocked(p)
		return
	}
	q.pushActiveLocked(p)
}

func (q *Queue) addForeignLocked(p *framework.QueuedPodInfo) {
	if q.opts.Stealable != nil && !q.opts.Stealable(p.Pod) {
		q.held[p.Pod.UID] = p
		return
	}
	q.foreign.upsert(p)
}

// Reassign re-evaluates ownership after the set of instances changed:
// foreign pods this instance now owns become active, and pods in activeQ
// that were never attempted and now belong to another instance become
// foreign.
func (q *Queue) Reassign() {
	if q.opts.Owned == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.opts.Clock.Now()
	var gained []*framework.QueuedPodInfo
	for uid, p := range q.held {
		if q.opts.Owned(p.Pod) {
			delete(q.held, uid)
			gained = append(gained, p)
		}
	}
	for _, p := range slices.Clone(q.foreign.items) {
		if q.opts.Owned(p.Pod) {
			q.foreign.remove(p.Pod.UID)
			gained = append(gained, p)
		}
	}
	for _, p := range slices.Clone(q.active.items) {
		if p.Attempts == 0 && !q.opts.Owned(p.Pod) {
			q.active.remove(p.Pod.UID)
			p.Timestamp = now
			q.addForeignLocked(p)
		}
	}
	for _, p := range gained {
		q.pushActiveLocked(p)
	}
}

// stealableLocked returns the oldest foreign pod that waited StealAfter,
// when this instance has nothing of its own to do (activeQ and backoffQ
// empty: busy instances do not duplicate each other's work) and, with
// OwnerOf, the pod's owner made no progress for StealAfter either.
func (q *Queue) stealableLocked() *framework.QueuedPodInfo {
	p := q.foreign.peek()
	if p == nil || q.active.Len() > 0 || q.backoff.Len() > 0 || q.opts.Clock.Since(maxTime(p.Timestamp, q.stealFloor)) < q.opts.StealAfter {
		return nil
	}
	if q.opts.OwnerOf == nil {
		return p
	}
	now := q.opts.Clock.Now()
	stuck := map[string]bool{}
	var best *framework.QueuedPodInfo
	for _, c := range q.foreign.items {
		if now.Sub(maxTime(c.Timestamp, q.stealFloor)) < q.opts.StealAfter || (best != nil && !c.Timestamp.Before(best.Timestamp)) {
			continue
		}
		owner := q.opts.OwnerOf(c.Pod)
		s, ok := stuck[owner]
		if !ok {
			s = now.Sub(q.progress[owner]) >= q.opts.StealAfter
			stuck[owner] = s
		}
		if s {
			best = c
		}
	}
	return best
}

// Update replaces a pending pod's object wherever it waits. A pod waiting
// as unschedulable or gated is retried, since its spec may now fit.
func (q *Queue) Update(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := pod.UID
	if p := q.active.get(uid); p != nil {
		p.PodInfo = framework.NewPodInfo(pod)
		q.active.upsert(p)
		return
	}
	if p := q.foreign.get(uid); p != nil {
		p.PodInfo = framework.NewPodInfo(pod)
		q.foreign.upsert(p)
		return
	}
	if p, ok := q.held[uid]; ok {
		p.PodInfo = framework.NewPodInfo(pod)
		return
	}
	if p := q.backoff.get(uid); p != nil {
		p.PodInfo = framework.NewPodInfo(pod)
		q.backoff.upsert(p)
		return
	}
	for _, m := range []map[types.UID]*framework.QueuedPodInfo{q.unschedulable, q.gated} {
		if p, ok := m[uid]; ok {
			if !podUpdateMatters(p.Pod, pod) {
				// Status only (our own PodScheduled condition or
				// nominatedNodeName patch): nothing that could make it
				// fit now.
				p.PodInfo = framework.NewPodInfo(pod)
				return
			}
			delete(m, uid)
			p.PodInfo = framework.NewPodInfo(pod)
			if q.isBackingOff(p) {
				q.backoff.upsert(p)
			} else {
				q.pushActiveLocked(p)
			}
			return
		}
	}
}

// podUpdateMatters reports whether a change to a pending pod can change
// its scheduling: its spec, labels or annotations (not its status,
// resourceVersion or managed fields).
func podUpdateMatters(old, cur *v1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!maps.Equal(old.Labels, cur.Labels) || !maps.Equal(old.Annotations, cur.Annotations)
}

// Delete removes a pod from the queue.
func (q *Queue) Delete(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.active.remove(uid)
	q.backoff.remove(uid)
	delete(q.unschedulable, uid)
	delete(q.gated, uid)
	if p := q.foreign.get(uid); p != nil {
		if q.opts.OwnerOf != nil {
			q.progress[q.opts.OwnerOf(p.Pod)] = q.opts.Clock.Now()
		}
		q.foreign.remove(uid)
	}
	delete(q.held, uid)
}

// Pop blocks until a pod is active and returns it, with the scheduling
// cycle number it starts.
func (q *Queue) Pop(ctx context.Context) (*framework.QueuedPodInfo, int64, error) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	var stolen *framework.QueuedPodInfo
	for q.active.Len() == 0 {
		if stolen = q.stealableLocked(); stolen != nil {
			break
		}
		if q.closed {
			return nil, 0, ErrQueueClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		q.cond.Wait()
	}
	var p *framework.QueuedPodInfo
	if stolen != nil {
		q.foreign.remove(stolen.Pod.UID)
		p = stolen
		if q.opts.OnSteal != nil {
			q.opts.OnSteal()
		}
	} else {
		p = heap.Pop(q.active).(*framework.QueuedPodInfo)
	}
	p.Attempts++
	if p.InitialAttemptTimestamp.IsZero() {
		p.InitialAttemptTimestamp = q.opts.Clock.Now()
	}
	q.cycle++
	return p, q.cycle, nil
}

// AddUnschedulable returns a pod whose attempt (begun in cycle) failed.
// rejected tells whether plugins rejected it (it then waits for an event)
// or an error happened (it backs off and retries).
func (q *Queue) AddUnschedulable(p *framework.QueuedPodInfo, cycle int64, rejected bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.active.get(p.Pod.UID) != nil || q.backoff.get(p.Pod.UID) != nil {
		return
	}
	p.Timestamp = q.opts.Clock.Now()
	if !rejected || q.moveCycle >= cycle {
		q.backoff.upsert(p)
		return
	}
	q.unschedulable[p.Pod.UID] = p
}

// Activate moves a pod waiting as unschedulable or in backoff straight to
// activeQ, skipping what is left of its backoff (a preemptor whose victims
// are gone). Pods elsewhere, or not in the queue, are left alone.
func (q *Queue) Activate(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.unschedulable[uid]; ok {
		delete(q.unschedulable, uid)
		q.pushActiveLocked(p)
		return
	}
	if p := q.backoff.remove(uid); p != nil {
		q.pushActiveLocked(p)
	}
}

// Requeue puts a pod straight back into activeQ (used when its binding
// lost a race: it should be retried at once, on fresh state).
func (q *Queue) Requeue(p *framework.QueuedPodInfo) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p.Timestamp = q.opts.Clock.Now()
	q.pushActiveLocked(p)
}

// OnEvent moves the unschedulable (and gated) pods that a plugin which
// rejected them registered interest in.
func (q *Queue) OnEvent(ev framework.ClusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range []map[types.UID]*framework.QueuedPodInfo{q.unschedulable, q.gated} {
		for uid, p := range m {
			if !q.interested(p, ev) {
				continue
			}
			delete(m, uid)
			if q.isBackingOff(p) {
				q.backoff.upsert(p)
			} else {
				q.pushActiveLocked(p)
			}
		}
	}
	// Even when nothing moved, a pod being scheduled right now may have
	// been rejected on the old state: remember the event's cycle.
	q.moveCycle = q.cycle
}

func (q *Queue) interested(p *framework.QueuedPodInfo, ev framework.ClusterEvent) bool {
	if len(p.UnschedulablePlugins) == 0 || q.opts.Events == nil {
		return true
	}
	events := q.opts.Events(p.Pod)
	for name := range p.UnschedulablePlugins {
		list, ok := events[name]
		if !ok || list == nil {
			return true
		}
		for _, e := range list {
			if e.Match(ev) {
				return true
			}
		}
	}
	return false
}

// Flush moves pods whose backoff has ended to activeQ, and pods waiting
// longer than MaxInUnschedulable to backoffQ/activeQ.
func (q *Queue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.opts.Clock.Now()
	for {
		p := q.backoff.peek()
		if p == nil || q.backoffEnd(p).After(now) {
			break
		}
		heap.Pop(q.backoff)
		q.pushActiveLocked(p)
	}
	if q.active.Len() == 0 && q.stealableLocked() != nil {
		// Wake Pop: a foreign pod waited long enough to be taken.
		q.cond.Broadcast()
	}
	if q.opts.MaxInUnschedulable > 0 {
		for uid, p := range q.unschedulable {
			if now.Sub(p.Timestamp) >= q.opts.MaxInUnschedulable {
				delete(q.unschedulable, uid)
				q.pushActiveLocked(p)
			}
		}
	}
}

// Run flushes every second until ctx ends, then closes the queue.
func (q *Queue) Run(ctx context.Context) {
	t := q.opts.Clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			q.Close()
			return
		case <-t.C():
			q.Flush()
		}
	}
}

// Close wakes Pop callers with ErrQueueClosed.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// Lengths reports the size of each sub-queue.
func (q *Queue) Lengths() (active, backoff, unschedulable, gated int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable), len(q.gated)
}

// Has reports whether the pod waits anywhere in the queue.
func (q *Queue) Has(uid types.UID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, u := q.unschedulable[uid]
	_, g := q.gated[uid]
	_, h := q.held[uid]
	return u || g || h || q.active.get(uid) != nil || q.backoff.get(uid) != nil || q.foreign.get(uid) != nil
}

// Foreign reports how many pending pods wait for another instance.
func (q *Queue) Foreign() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.foreign.Len() + len(q.held)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

package controller

import (
	"container/heap"
	"slices"
	"strconv"
	"sync"
)

// backgroundSet holds the keys whose next reconcile is bulk work: an
// informer's initial list after a start, or a requeue of everything after
// a policy or cluster change. They wait behind keys queued for a live
// change, so that a change made right after a restart does not wait for
// thousands of objects that did not change. Each carries the host
// object's resourceVersion as last seen, which orders background work.
type backgroundSet struct {
	mu   sync.Mutex
	keys map[objectKey]uint64
}

func newBackgroundSet() *backgroundSet { return &backgroundSet{keys: map[objectKey]uint64{}} }

// mark makes k background work. rv is the host object's resourceVersion;
// empty keeps the one already recorded.
func (b *backgroundSet) mark(k objectKey, rv string) {
	n, _ := strconv.ParseUint(rv, 10, 64) // not a number: 0, last
	b.mu.Lock()
	if old, ok := b.keys[k]; ok && rv == "" {
		n = old
	}
	b.keys[k] = n
	b.mu.Unlock()
}

func (b *backgroundSet) clear(k objectKey) {
	b.mu.Lock()
	delete(b.keys, k)
	b.mu.Unlock()
}

func (b *backgroundSet) has(k objectKey) bool {
	_, ok := b.get(k)
	return ok
}

func (b *backgroundSet) get(k objectKey) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rv, ok := b.keys[k]
	return rv, ok
}

// priorityFIFO is the order of the controller's workqueue (it implements
// workqueue.Queue): keys not in the background set come first, in FIFO
// order; then background keys, the most recently modified host object
// first (highest resourceVersion). After a restart that puts an object
// changed while the control plane was down, or right after it started,
// ahead of the thousands it already propagated, without a write or a
// member read to tell them apart. The workqueue calls it under its own
// lock; it only takes the background set's lock, which is never held
// while calling the workqueue.
type priorityFIFO struct {
	bg   *backgroundSet
	high []objectKey
	low  bgHeap
}

type bgEntry struct {
	k   objectKey
	rv  uint64
	seq uint64 // FIFO among equal resourceVersions
}

// bgHeap is a max-heap on (rv, -seq).
type bgHeap struct {
	e   []bgEntry
	seq uint64
}

func (h *bgHeap) Len() int { return len(h.e) }
func (h *bgHeap) Less(i, j int) bool {
	if h.e[i].rv != h.e[j].rv {
		return h.e[i].rv > h.e[j].rv
	}
	return h.e[i].seq < h.e[j].seq
}
func (h *bgHeap) Swap(i, j int) { h.e[i], h.e[j] = h.e[j], h.e[i] }
func (h *bgHeap) Push(x any)    { h.e = append(h.e, x.(bgEntry)) }
func (h *bgHeap) Pop() any {
	n := len(h.e) - 1
	x := h.e[n]
	h.e[n] = bgEntry{}
	h.e = h.e[:n]
	return x
}

func (q *priorityFIFO) Push(k objectKey) {
	if rv, ok := q.bg.get(k); ok {
		q.low.seq++
		heap.Push(&q.low, bgEntry{k: k, rv: rv, seq: q.low.seq})
		return
	}
	q.high = append(q.high, k)
}

// Touch is called when k, already waiting, is added again: if it is no
// longer background it moves ahead.
func (q *priorityFIFO) Touch(k objectKey) {
	if q.bg.has(k) {
		return
	}
	if i := slices.IndexFunc(q.low.e, func(e bgEntry) bool { return e.k == k }); i >= 0 {
		heap.Remove(&q.low, i)
		q.high = append(q.high, k)
	}
}

func (q *priorityFIFO) Len() int { return len(q.high) + q.low.Len() }

func (q *priorityFIFO) Pop() objectKey {
	var k objectKey
	if len(q.high) > 0 {
		k, q.high[0] = q.high[0], objectKey{}
		q.high = q.high[1:]
		return k
	}
	return heap.Pop(&q.low).(bgEntry).k
}

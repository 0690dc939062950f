package controller

import (
	"slices"
	"sync"
)

// backgroundSet holds the keys whose next reconcile is bulk work: an
// informer's initial list after a start, or a requeue of everything after
// a policy or cluster change. They wait behind keys queued for a live
// change, so that a change made right after a restart does not wait for
// thousands of objects that did not change.
type backgroundSet struct {
	mu   sync.Mutex
	keys map[objectKey]struct{}
}

func newBackgroundSet() *backgroundSet { return &backgroundSet{keys: map[objectKey]struct{}{}} }

func (b *backgroundSet) mark(k objectKey) {
	b.mu.Lock()
	b.keys[k] = struct{}{}
	b.mu.Unlock()
}

func (b *backgroundSet) clear(k objectKey) {
	b.mu.Lock()
	delete(b.keys, k)
	b.mu.Unlock()
}

func (b *backgroundSet) has(k objectKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.keys[k]
	return ok
}

// priorityFIFO is the order of the controller's workqueue (it implements
// workqueue.Queue): keys not in the background set come first, in FIFO
// order, then background keys. The workqueue calls it under its own lock;
// it only takes the background set's lock, which is never held while
// calling the workqueue.
type priorityFIFO struct {
	bg        *backgroundSet
	high, low []objectKey
}

func (q *priorityFIFO) Push(k objectKey) {
	if q.bg.has(k) {
		q.low = append(q.low, k)
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
	if i := slices.Index(q.low, k); i >= 0 {
		q.low = slices.Delete(q.low, i, i+1)
		q.high = append(q.high, k)
	}
}

func (q *priorityFIFO) Len() int { return len(q.high) + len(q.low) }

func (q *priorityFIFO) Pop() objectKey {
	var k objectKey
	if len(q.high) > 0 {
		k, q.high[0] = q.high[0], objectKey{}
		q.high = q.high[1:]
		return k
	}
	k, q.low[0] = q.low[0], objectKey{}
	q.low = q.low[1:]
	return k
}

package scheduler

import (
	"cmp"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// shapeKey is a pod's CPU and memory requests.
type shapeKey struct{ milliCPU, memory int64 }

func podShape(p *v1.Pod) shapeKey {
	r := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	return shapeKey{milliCPU: r.Cpu().MilliValue(), memory: r.Memory().Value()}
}

type pendingEntry struct {
	shape   shapeKey
	assumed bool
}

// pendingShapes counts the request shapes of the pods of this scheduler's
// profiles that wait to be scheduled: added when the informer reports a
// pending pod, set aside while the pod is assumed (its binding cycle
// runs), counted again if that binding is undone, removed when the pod is
// bound or deleted. It is the framework's PendingSource (the fragmentation
// plugin reads it).
type pendingShapes struct {
	mu     sync.Mutex
	pods   map[types.UID]pendingEntry
	counts map[shapeKey]int
	// cached is the sorted answer for the counts at version cachedAt.
	version, cachedAt uint64
	cached            []framework.PendingShape
	valid             bool
}

func newPendingShapes() *pendingShapes {
	return &pendingShapes{pods: map[types.UID]pendingEntry{}, counts: map[shapeKey]int{}}
}

func (ps *pendingShapes) countLocked(s shapeKey, d int) {
	ps.version++
	if n := ps.counts[s] + d; n > 0 {
		ps.counts[s] = n
	} else {
		delete(ps.counts, s)
	}
}

// set records a pending pod (or its new shape after an update).
func (ps *pendingShapes) set(uid types.UID, s shapeKey) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e, ok := ps.pods[uid]
	if ok && e.shape == s {
		return
	}
	if ok && !e.assumed {
		ps.countLocked(e.shape, -1)
	}
	e.shape = s
	ps.pods[uid] = e
	if !e.assumed {
		ps.countLocked(s, 1)
	}
}

// remove forgets a pod that was bound or deleted.
func (ps *pendingShapes) remove(uid types.UID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e, ok := ps.pods[uid]
	if !ok {
		return
	}
	delete(ps.pods, uid)
	if !e.assumed {
		ps.countLocked(e.shape, -1)
	}
}

// assume sets a pending pod aside while it is assumed on a node (assumed
// true) or counts it again when that is undone (false).
func (ps *pendingShapes) assume(uid types.UID, assumed bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	e, ok := ps.pods[uid]
	if !ok || e.assumed == assumed {
		return
	}
	e.assumed = assumed
	ps.pods[uid] = e
	if assumed {
		ps.countLocked(e.shape, -1)
	} else {
		ps.countLocked(e.shape, 1)
	}
}

// PendingShapes implements framework.PendingSource: the max most common
// shapes (ties: smaller CPU, then smaller memory first, so that the answer
// does not depend on map order). The sorted list is rebuilt only when the
// counts changed.
func (ps *pendingShapes) PendingShapes(max int) []framework.PendingShape {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.valid || ps.cachedAt != ps.version {
		// A new slice: callers may still hold the previous answer.
		out := make([]framework.PendingShape, 0, len(ps.counts))
		for s, n := range ps.counts {
			out = append(out, framework.PendingShape{MilliCPU: s.milliCPU, Memory: s.memory, Count: n})
		}
		slices.SortFunc(out, func(a, b framework.PendingShape) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.MilliCPU, b.MilliCPU), cmp.Compare(a.Memory, b.Memory))
		})
		ps.cached, ps.cachedAt, ps.valid = out, ps.version, true
	}
	if max > 0 && len(ps.cached) > max {
		return ps.cached[:max:max]
	}
	return ps.cached
}

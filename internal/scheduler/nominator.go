package scheduler

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// nomination is a pending pod that preempted (or was seen with
// status.nominatedNodeName) and waits for room on node.
type nomination struct {
	pod  *framework.PodInfo
	node string
	// victims not yet seen deleted; only for preemptions this instance
	// made.
	victims map[types.UID]struct{}
}

// nominator records nominations: the room a preemptor evicted victims for
// is reserved against pods of lower or equal priority (they do not see it
// as free, and preemption does not pick it again for another pod), and a
// preemptor is woken the moment its last victim is gone.
type nominator struct {
	mu       sync.Mutex
	byPod    map[types.UID]*nomination
	byNode   map[string]map[types.UID]*framework.PodInfo
	victimOf map[types.UID]types.UID
}

func newNominator() *nominator {
	return &nominator{
		byPod:    map[types.UID]*nomination{},
		byNode:   map[string]map[types.UID]*framework.PodInfo{},
		victimOf: map[types.UID]types.UID{},
	}
}

func podPriority(p *v1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// add records pod as nominated to node with the victims it evicted
// (replacing an earlier nomination of the pod).
func (n *nominator) add(pod *framework.PodInfo, node string, victims []types.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeLocked(pod.UID())
	nm := &nomination{pod: pod, node: node}
	if len(victims) > 0 {
		nm.victims = make(map[types.UID]struct{}, len(victims))
		for _, v := range victims {
			nm.victims[v] = struct{}{}
			n.victimOf[v] = pod.UID()
		}
	}
	n.byPod[pod.UID()] = nm
	if n.byNode[node] == nil {
		n.byNode[node] = map[types.UID]*framework.PodInfo{}
	}
	n.byNode[node][pod.UID()] = pod
}

// observe records a nomination read from a pending pod's status (another
// instance's preemption, or one made before a restart) unless this
// instance already has one for the pod; it keeps the pod object current.
func (n *nominator) observe(pod *v1.Pod) {
	node := pod.Status.NominatedNodeName
	n.mu.Lock()
	defer n.mu.Unlock()
	if nm, ok := n.byPod[pod.UID]; ok {
		if nm.node == node || node == "" {
			return
		}
	}
	if node == "" {
		return
	}
	n.removeLocked(pod.UID)
	pi := framework.NewPodInfo(pod)
	n.byPod[pod.UID] = &nomination{pod: pi, node: node}
	if n.byNode[node] == nil {
		n.byNode[node] = map[types.UID]*framework.PodInfo{}
	}
	n.byNode[node][pod.UID] = pi
}

// remove forgets pod's nomination (bound, deleted).
func (n *nominator) remove(uid types.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeLocked(uid)
}

func (n *nominator) removeLocked(uid types.UID) {
	nm, ok := n.byPod[uid]
	if !ok {
		return
	}
	delete(n.byPod, uid)
	for v := range nm.victims {
		if n.victimOf[v] == uid {
			delete(n.victimOf, v)
		}
	}
	if m := n.byNode[nm.node]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(n.byNode, nm.node)
		}
	}
}

// victimGone notes that a pod was deleted; when it was the last
// outstanding victim of a preemptor, it returns that preemptor's UID.
func (n *nominator) victimGone(uid types.UID) (types.UID, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.victimOf[uid]
	if !ok {
		return "", false
	}
	delete(n.victimOf, uid)
	nm := n.byPod[p]
	if nm == nil {
		return "", false
	}
	delete(nm.victims, uid)
	return p, len(nm.victims) == 0
}

// waiting returns the node pod is nominated to and whether some of its
// victims are still present according to present.
func (n *nominator) waiting(uid types.UID, present func(types.UID) bool) (node string, victimsLeft bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nm, ok := n.byPod[uid]
	if !ok {
		return "", false
	}
	for v := range nm.victims {
		if present(v) {
			return nm.node, true
		}
		delete(nm.victims, v)
		delete(n.victimOf, v)
	}
	return nm.node, false
}

// NominatedPods implements framework.Nominator.
func (n *nominator) NominatedPods(node string, minPriority int32, exclude types.UID) []*framework.PodInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.byNode[node]
	if len(m) == 0 {
		return nil
	}
	var out []*framework.PodInfo
	for uid, pi := range m {
		if uid != exclude && podPriority(pi.Pod) >= minPriority {
			out = append(out, pi)
		}
	}
	return out
}

// nodes returns the nodes with nominations (a copy).
func (n *nominator) nodes() map[string]struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.byNode) == 0 {
		return nil
	}
	out := make(map[string]struct{}, len(n.byNode))
	for k := range n.byNode {
		out[k] = struct{}{}
	}
	return out
}

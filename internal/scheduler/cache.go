package scheduler

import (
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

type cachedPod struct {
	info     *framework.PodInfo
	node     string
	assumed  bool
	bindDone bool
}

// Cache holds the nodes and the pods placed on them: pods the informers
// report bound, and pods this scheduler assumed (decided, not yet seen
// bound). It produces snapshots for scheduling cycles, copying only the
// nodes changed since the previous snapshot.
type Cache struct {
	mu         sync.RWMutex
	clock      clock.Clock
	nodes      map[string]*framework.NodeInfo
	pods       map[types.UID]*cachedPod
	namespaces map[string]labels.Set
	// deleted remembers recently deleted pods, so that ledger entries of
	// pods this instance saw deleted can be pruned safely.
	deleted map[types.UID]time.Time

	dirty        map[string]struct{}
	nodesChanged bool
	nsChanged    bool
	clones       map[string]*framework.NodeInfo
}

// NewCache returns an empty cache.
func NewCache(clk clock.Clock) *Cache {
	return &Cache{
		clock:      clk,
		nodes:      map[string]*framework.NodeInfo{},
		pods:       map[types.UID]*cachedPod{},
		namespaces: map[string]labels.Set{},
		deleted:    map[types.UID]time.Time{},
		dirty:      map[string]struct{}{},
		clones:     map[string]*framework.NodeInfo{},
	}
}

func (c *Cache) nodeInfo(name string) *framework.NodeInfo {
	ni, ok := c.nodes[name]
	if !ok {
		ni = framework.NewNodeInfo()
		c.nodes[name] = ni
	}
	c.dirty[name] = struct{}{}
	return ni
}

// AddNode adds or updates a node.
func (c *Cache) AddNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodeInfo(node.Name)
	if ni.Node() == nil {
		c.nodesChanged = true
	}
	ni.SetNode(node)
}

// RemoveNode removes a node; its pods stay until their own deletes come.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	c.nodesChanged = true
	c.dirty[name] = struct{}{}
	if len(ni.Pods) == 0 {
		delete(c.nodes, name)
		return
	}
	ni.RemoveNode()
}

// AddNamespace records a namespace's labels.
func (c *Cache) AddNamespace(ns *v1.Namespace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.namespaces[ns.Name] = labels.Set(ns.Labels)
	c.nsChanged = true
}

// RemoveNamespace forgets a namespace.
func (c *Cache) RemoveNamespace(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.namespaces, name)
	c.nsChanged = true
}

func (c *Cache) placeLocked(pi *framework.PodInfo, node string) {
	c.nodeInfo(node).AddPodInfo(pi)
}

func (c *Cache) unplaceLocked(uid types.UID, node string) {
	if ni, ok := c.nodes[node]; ok {
		ni.RemovePod(uid)
		c.dirty[node] = struct{}{}
		if ni.Node() == nil && len(ni.Pods) == 0 {
			delete(c.nodes, node)
		}
	}
}

// AssumePod records that pod (with spec.nodeName set to node) will be
// bound there, before the API server says so.
func (c *Cache) AssumePod(pi *framework.PodInfo, node string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.UID()]; ok {
		return fmt.Errorf("pod %s/%s is already in the cache", pi.Pod.Namespace, pi.Pod.Name)
	}
	c.pods[pi.UID()] = &cachedPod{info: pi, node: node, assumed: true}
	c.placeLocked(pi, node)
	return nil
}

// FinishBinding marks an assumed pod's binding as sent.
func (c *Cache) FinishBinding(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[uid]; ok && p.assumed {
		p.bindDone = true
	}
}

// ForgetPod drops an assumed pod (its binding failed).
func (c *Cache) ForgetPod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pods[uid]
	if !ok || !p.assumed {
		return
	}
	delete(c.pods, uid)
	c.unplaceLocked(uid, p.node)
}

// IsAssumed reports whether uid is assumed and not yet confirmed.
func (c *Cache) IsAssumed(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.pods[uid]
	return ok && p.assumed
}

// AddPod records a bound pod (confirming it if it was assumed).
func (c *Cache) AddPod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addPodLocked(pod)
}

func (c *Cache) addPodLocked(pod *v1.Pod) {
	if p, ok := c.pods[pod.UID]; ok {
		c.unplaceLocked(pod.UID, p.node)
	}
	pi := framework.NewPodInfo(pod)
	c.pods[pod.UID] = &cachedPod{info: pi, node: pod.Spec.NodeName}
	c.placeLocked(pi, pod.Spec.NodeName)
}

// UpdatePod records a change to a bound pod.
func (c *Cache) UpdatePod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pods[pod.UID]; ok && !p.assumed && p.info.Pod.ResourceVersion == pod.ResourceVersion && p.node == pod.Spec.NodeName {
		return
	}
	c.addPodLocked(pod)
}

// RemovePod forgets a pod that was deleted (or finished).
func (c *Cache) RemovePod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleted[pod.UID] = c.clock.Now()
	p, ok := c.pods[pod.UID]
	if !ok {
		return
	}
	delete(c.pods, pod.UID)
	c.unplaceLocked(pod.UID, p.node)
}

// recentlyDeleted reports whether this cache saw uid deleted; old
// tombstones are dropped.
func (c *Cache) recentlyDeleted(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if len(c.deleted) > 10000 {
		for k, t := range c.deleted {
			if now.Sub(t) > 30*time.Minute {
				delete(c.deleted, k)
			}
		}
	}
	_, ok := c.deleted[uid]
	return ok
}

// BoundNode returns the node the API server has bound uid to, as far as
// the informer has told; assumed pods do not count (their binding may
// still lose to another instance's).
func (c *Cache) BoundNode(uid types.UID) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.pods[uid]
	if !ok || p.assumed {
		return "", false
	}
	return p.node, true
}

// Has reports whether the cache holds uid (bound or assumed).
func (c *Cache) Has(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

// NodeInfo returns a copy of one node's info.
func (c *Cache) NodeInfo(name string) (*framework.NodeInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ni, ok := c.nodes[name]
	if !ok || ni.Node() == nil {
		return nil, false
	}
	return ni.Clone(), true
}

// Counts returns the number of nodes and pods held.
func (c *Cache) Counts() (nodes, pods int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.nodes), len(c.pods)
}

// UpdateSnapshot brings snap up to date, cloning only the nodes changed
// since the last call. snap must be used with this cache only.
func (c *Cache) UpdateSnapshot(snap *framework.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nsChanged || snap.NamespaceLabels == nil {
		ns := make(map[string]labels.Set, len(c.namespaces))
		for k, v := range c.namespaces {
			ns[k] = v
		}
		snap.NamespaceLabels = ns
		c.nsChanged = false
	}
	if len(c.dirty) == 0 && !c.nodesChanged && snap.NodeInfos != nil {
		return
	}
	changed := make([]*framework.NodeInfo, 0, len(c.dirty))
	for name := range c.dirty {
		ni, ok := c.nodes[name]
		if !ok {
			delete(c.clones, name)
			c.nodesChanged = true
			continue
		}
		cl := ni.Clone()
		c.clones[name] = cl
		if cl.Node() == nil {
			continue
		}
		changed = append(changed, cl)
	}
	clear(c.dirty)
	if !c.nodesChanged && snap.Replace(changed) {
		return
	}
	names := make([]string, 0, len(c.clones))
	for name, cl := range c.clones {
		if cl.Node() != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	list := make([]*framework.NodeInfo, len(names))
	for i, n := range names {
		list[i] = c.clones[n]
	}
	snap.Reset(list)
	c.nodesChanged = false
}

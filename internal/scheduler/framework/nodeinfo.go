package framework

import (
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

var generation atomic.Int64

// nextGeneration returns a process-wide increasing number; a NodeInfo's
// Generation changes on every mutation so snapshots know what to copy.
func nextGeneration() int64 { return generation.Add(1) }

// NodeInfo is one node and the pods assigned (or assumed) to it, with
// running totals. The scheduler cache owns mutable NodeInfos; plugins only
// ever see clones held by a Snapshot, which they must not change.
type NodeInfo struct {
	node *v1.Node
	// name is node.Name, kept here: Filter and Score loops over thousands
	// of nodes read it for every node, and following the pointer to the
	// Node object for it cost a cache miss each time.
	name string
	// preferNoSchedule is true when the node has a PreferNoSchedule taint
	// (the only taints scoring looks at).
	preferNoSchedule bool
	// unschedulable and taints are node.Spec's, kept here for the same
	// reason as name.
	unschedulable bool
	taints        []v1.Taint
	// pos is 1 + the node's position in the NodeInfos of the snapshot
	// that last listed it (0: never listed); see Snapshot.Position.
	pos int

	// Pods on the node, in no particular order.
	Pods []*PodInfo
	// PodsWithAffinity have any pod (anti-)affinity term.
	PodsWithAffinity []*PodInfo
	// PodsWithRequiredAntiAffinity have a required anti-affinity term.
	PodsWithRequiredAntiAffinity []*PodInfo

	// Requested sums the pods' requests.
	Requested Resource
	// NonZeroRequested sums the pods' requests with scoring defaults.
	NonZeroRequested Resource
	// Allocatable is the node's allocatable resources.
	Allocatable Resource
	// UsedPorts are the host ports bound by the pods.
	UsedPorts []HostPort

	// Generation changes on every mutation.
	Generation int64
}

// NewNodeInfo returns a NodeInfo holding pods (node set later).
func NewNodeInfo(pods ...*PodInfo) *NodeInfo {
	ni := &NodeInfo{Generation: nextGeneration()}
	for _, p := range pods {
		ni.AddPodInfo(p)
	}
	return ni
}

// Node returns the node, nil while only pods are known.
func (n *NodeInfo) Node() *v1.Node { return n.node }

// Name is the node's name ("" while unknown).
func (n *NodeInfo) Name() string { return n.name }

// HasPreferNoScheduleTaint reports whether the node has a taint with the
// PreferNoSchedule effect.
func (n *NodeInfo) HasPreferNoScheduleTaint() bool { return n.preferNoSchedule }

// Unschedulable is the node's spec.unschedulable.
func (n *NodeInfo) Unschedulable() bool { return n.unschedulable }

// Taints are the node's spec.taints (do not change them).
func (n *NodeInfo) Taints() []v1.Taint { return n.taints }

// SetNode sets or replaces the node.
func (n *NodeInfo) SetNode(node *v1.Node) {
	n.node = node
	n.name = node.Name
	n.unschedulable = node.Spec.Unschedulable
	n.taints = node.Spec.Taints
	n.preferNoSchedule = false
	for i := range node.Spec.Taints {
		if node.Spec.Taints[i].Effect == v1.TaintEffectPreferNoSchedule {
			n.preferNoSchedule = true
		}
	}
	n.Allocatable = NewResource(node.Status.Allocatable)
	n.Generation = nextGeneration()
}

// RemoveNode forgets the node but keeps its pods.
func (n *NodeInfo) RemoveNode() {
	n.node = nil
	n.name = ""
	n.unschedulable = false
	n.taints = nil
	n.preferNoSchedule = false
	n.Allocatable = Resource{}
	n.Generation = nextGeneration()
}

// AddPodInfo accounts a pod on the node.
func (n *NodeInfo) AddPodInfo(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if pi.HasAffinity() {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinityTerms) > 0 {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
	}
	n.Requested.AddResource(&pi.Requests)
	n.NonZeroRequested.MilliCPU += pi.NonZeroCPU
	n.NonZeroRequested.Memory += pi.NonZeroMemory
	n.UsedPorts = append(n.UsedPorts, pi.HostPorts...)
	n.Generation = nextGeneration()
}

func removeFrom(s []*PodInfo, uid types.UID) ([]*PodInfo, bool) {
	for i, p := range s {
		if p.Pod.UID == uid {
			last := len(s) - 1
			s[i] = s[last]
			s[last] = nil
			return s[:last], true
		}
	}
	return s, false
}

// RemovePod removes the pod with uid and reports whether it was there.
func (n *NodeInfo) RemovePod(uid types.UID) bool {
	var pi *PodInfo
	for _, p := range n.Pods {
		if p.Pod.UID == uid {
			pi = p
			break
		}
	}
	if pi == nil {
		return false
	}
	n.Pods, _ = removeFrom(n.Pods, uid)
	n.PodsWithAffinity, _ = removeFrom(n.PodsWithAffinity, uid)
	n.PodsWithRequiredAntiAffinity, _ = removeFrom(n.PodsWithRequiredAntiAffinity, uid)
	n.Requested.SubResource(&pi.Requests)
	n.NonZeroRequested.MilliCPU -= pi.NonZeroCPU
	n.NonZeroRequested.Memory -= pi.NonZeroMemory
	if len(pi.HostPorts) > 0 {
		n.UsedPorts = n.UsedPorts[:0]
		for _, p := range n.Pods {
			n.UsedPorts = append(n.UsedPorts, p.HostPorts...)
		}
	}
	n.Generation = nextGeneration()
	return true
}

// Clone returns a copy whose slices and maps may be changed without
// affecting n; the PodInfos themselves are shared (they are immutable).
func (n *NodeInfo) Clone() *NodeInfo {
	return &NodeInfo{
		node:                         n.node,
		name:                         n.name,
		preferNoSchedule:             n.preferNoSchedule,
		unschedulable:                n.unschedulable,
		taints:                       n.taints,
		pos:                          n.pos,
		Pods:                         append([]*PodInfo(nil), n.Pods...),
		PodsWithAffinity:             append([]*PodInfo(nil), n.PodsWithAffinity...),
		PodsWithRequiredAntiAffinity: append([]*PodInfo(nil), n.PodsWithRequiredAntiAffinity...),
		Requested:                    n.Requested.Clone(),
		NonZeroRequested:             n.NonZeroRequested.Clone(),
		Allocatable:                  n.Allocatable.Clone(),
		UsedPorts:                    append([]HostPort(nil), n.UsedPorts...),
		Generation:                   n.Generation,
	}
}

// Snapshot is the cluster as one scheduling cycle sees it: immutable
// NodeInfos, the nodes with affinity pods listed apart (so affinity
// plugins need not scan every pod), and namespace labels for
// namespaceSelector.
type Snapshot struct {
	// NodeInfos lists nodes that exist, in a stable order.
	NodeInfos []*NodeInfo
	index     map[string]int
	// HavePodsWithAffinity are the nodes with at least one pod that has a
	// pod (anti-)affinity term.
	HavePodsWithAffinity []*NodeInfo
	// HavePodsWithRequiredAntiAffinity are the nodes with at least one pod
	// that has a required anti-affinity term.
	HavePodsWithRequiredAntiAffinity []*NodeInfo
	// NamespaceLabels maps a namespace to its labels.
	NamespaceLabels map[string]labels.Set
	// Generation is the highest NodeInfo generation included.
	Generation int64

	// labels and terms are the incremental indexes of index.go.
	labels labelIndex
	terms  termIndex
	// domains: topology key → value → positions in NodeInfos of the nodes
	// with that label, built on first use (NodesInDomain) and dropped when
	// the node list or a node's labels change.
	domains map[string]map[string][]int32
	// perNode: topology key → whether no two nodes share a value of it,
	// built and dropped with domains.
	perNode map[string]bool
	// domainIDs: topology key → each node's domain number, built and
	// dropped with domains.
	domainIDs map[string]*DomainIndex
	// gens[i] is NodeInfos[i].Generation, in one array so that finding the
	// nodes changed since an earlier cycle reads no NodeInfo.
	gens []int64
	// layout changes whenever positions may have changed (Reset).
	layout int64
	// tainted counts the nodes with a PreferNoSchedule taint.
	tainted int
}

// NodesWithPreferNoScheduleTaint counts the nodes with a PreferNoSchedule
// taint.
func (s *Snapshot) NodesWithPreferNoScheduleTaint() int { return s.tainted }

// Layout identifies the node list's order: positions in NodeInfos from
// two cycles with the same Layout designate the same nodes.
func (s *Snapshot) Layout() int64 { return s.layout }

// Generations lists NodeInfos[i].Generation for every position (do not
// change it).
func (s *Snapshot) Generations() []int64 { return s.gens }

// Position returns the node's index in s.NodeInfos, or false when the
// node is not (or no longer) at a known position of this snapshot (a
// NodeInfo from elsewhere, e.g. a test's). A clone of a listed NodeInfo
// has the position of its original.
func (s *Snapshot) Position(n *NodeInfo) (int, bool) {
	i := n.pos - 1
	if i < 0 || i >= len(s.NodeInfos) || s.NodeInfos[i].name != n.name {
		return 0, false
	}
	return i, true
}

// NodesInDomain returns the positions in NodeInfos of the nodes whose
// label topologyKey has value value. The slice belongs to the snapshot:
// do not change it. Call it only from PreFilter or PreScore (not
// concurrently).
func (s *Snapshot) NodesInDomain(topologyKey, value string) []int32 {
	byValue, ok := s.domains[topologyKey]
	if !ok {
		byValue = map[string][]int32{}
		for i, n := range s.NodeInfos {
			if v, ok := n.node.Labels[topologyKey]; ok {
				byValue[v] = append(byValue[v], int32(i))
			}
		}
		if s.domains == nil {
			s.domains = map[string]map[string][]int32{}
		}
		s.domains[topologyKey] = byValue
	}
	return byValue[value]
}

// DomainIndex numbers the domains of one topology key: plugins that
// compute a verdict or a score per domain (a few zones) in PreFilter or
// PreScore then read it per node from an array instead of looking the
// node's label up in a map.
type DomainIndex struct {
	// IDs[i] is the domain number of NodeInfos[i], -1 if that node does
	// not have the label.
	IDs []int32
	// Values[d] is the label value of domain d; ID is the reverse.
	Values []string
	ID     map[string]int32
}

// Domains returns the domain numbering of topologyKey for this snapshot's
// node list. It belongs to the snapshot (do not change it) and stays valid
// until the node list or a node's labels change, which replaces it. Call
// it only from PreFilter or PreScore (not concurrently).
func (s *Snapshot) Domains(topologyKey string) *DomainIndex {
	if x, ok := s.domainIDs[topologyKey]; ok {
		return x
	}
	s.NodesInDomain(topologyKey, "")
	byValue := s.domains[topologyKey]
	x := &DomainIndex{
		IDs:    make([]int32, len(s.NodeInfos)),
		Values: make([]string, 0, len(byValue)),
		ID:     make(map[string]int32, len(byValue)),
	}
	for i := range x.IDs {
		x.IDs[i] = -1
	}
	for v, nodes := range byValue {
		d := int32(len(x.Values))
		x.Values = append(x.Values, v)
		x.ID[v] = d
		for _, i := range nodes {
			x.IDs[i] = d
		}
	}
	if s.domainIDs == nil {
		s.domainIDs = map[string]*DomainIndex{}
	}
	s.domainIDs[topologyKey] = x
	return x
}

// PerNodeDomains reports whether no two nodes share a value of
// topologyKey (kubernetes.io/hostname normally): a domain of that key is
// then at most one node, and counts of pods per domain are per node. Call
// it only from PreFilter or PreScore (not concurrently).
func (s *Snapshot) PerNodeDomains(topologyKey string) bool {
	if v, ok := s.perNode[topologyKey]; ok {
		return v
	}
	s.NodesInDomain(topologyKey, "")
	unique := true
	for _, nodes := range s.domains[topologyKey] {
		if len(nodes) > 1 {
			unique = false
			break
		}
	}
	if s.perNode == nil {
		s.perNode = map[string]bool{}
	}
	s.perNode[topologyKey] = unique
	return unique
}

// NewSnapshot builds a snapshot from NodeInfos (taken as they are, not
// cloned) and namespace labels; for tests and simulations.
func NewSnapshot(nodes []*NodeInfo, namespaces map[string]labels.Set) *Snapshot {
	s := &Snapshot{NamespaceLabels: namespaces}
	s.Reset(nodes)
	return s
}

// Reset replaces the node list and rebuilds the node indexes; the pod
// indexes are updated only for the nodes whose version changed.
func (s *Snapshot) Reset(nodes []*NodeInfo) {
	old := make(map[string]*NodeInfo, len(s.NodeInfos))
	for _, n := range s.NodeInfos {
		old[n.Name()] = n
	}
	s.NodeInfos = make([]*NodeInfo, 0, len(nodes))
	s.gens = make([]int64, 0, len(nodes))
	s.tainted = 0
	s.layout = nextGeneration()
	if s.index == nil {
		s.index = make(map[string]int, len(nodes))
	} else {
		clear(s.index)
	}
	for _, n := range nodes {
		if n.Node() == nil {
			continue
		}
		s.index[n.Name()] = len(s.NodeInfos)
		n.pos = len(s.NodeInfos) + 1
		s.NodeInfos = append(s.NodeInfos, n)
		s.gens = append(s.gens, n.Generation)
		if n.preferNoSchedule {
			s.tainted++
		}
		s.Generation = max(s.Generation, n.Generation)
		s.indexNode(old[n.Name()], n)
		delete(old, n.Name())
	}
	for _, n := range old {
		s.indexNode(n, nil)
	}
	s.domains, s.perNode, s.domainIDs = nil, nil, nil
	s.reindexAffinity()
}

func (s *Snapshot) reindexAffinity() {
	s.HavePodsWithAffinity = s.HavePodsWithAffinity[:0]
	s.HavePodsWithRequiredAntiAffinity = s.HavePodsWithRequiredAntiAffinity[:0]
	for _, n := range s.NodeInfos {
		if len(n.PodsWithAffinity) > 0 {
			s.HavePodsWithAffinity = append(s.HavePodsWithAffinity, n)
		}
		if len(n.PodsWithRequiredAntiAffinity) > 0 {
			s.HavePodsWithRequiredAntiAffinity = append(s.HavePodsWithRequiredAntiAffinity, n)
		}
	}
}

// Replace swaps in new versions of nodes already in the snapshot (same
// names), in place, and reports false if some node is not there (the
// caller then uses Reset). The snapshot is owned by the scheduling loop:
// it changes between cycles, so binding-cycle plugins must not keep it.
func (s *Snapshot) Replace(nodes []*NodeInfo) bool {
	affinityChanged := false
	for _, n := range nodes {
		i, ok := s.index[n.Name()]
		if !ok || n.Node() == nil {
			return false
		}
		old := s.NodeInfos[i]
		if len(old.PodsWithAffinity) > 0 || len(n.PodsWithAffinity) > 0 {
			affinityChanged = true
		}
		if old.node != n.node && !sameLabels(old.node.Labels, n.node.Labels) {
			s.domains, s.perNode, s.domainIDs = nil, nil, nil
		}
		n.pos = i + 1
		if old.preferNoSchedule {
			s.tainted--
		}
		if n.preferNoSchedule {
			s.tainted++
		}
		s.NodeInfos[i] = n
		s.gens[i] = n.Generation
		s.Generation = max(s.Generation, n.Generation)
		s.indexNode(old, n)
	}
	if affinityChanged {
		s.reindexAffinity()
	}
	return true
}

// Get returns the node named name.
func (s *Snapshot) Get(name string) (*NodeInfo, bool) {
	i, ok := s.index[name]
	if !ok {
		return nil, false
	}
	return s.NodeInfos[i], true
}

// NumNodes is len(NodeInfos).
func (s *Snapshot) NumNodes() int { return len(s.NodeInfos) }

// NamespaceLabelsOf returns the labels of namespace ns (nil if unknown).
func (s *Snapshot) NamespaceLabelsOf(ns string) labels.Set {
	if s == nil {
		return nil
	}
	return s.NamespaceLabels[ns]
}

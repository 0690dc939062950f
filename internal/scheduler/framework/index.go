package framework

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// The snapshot keeps two indexes, updated incrementally from the pods
// that come and go on the nodes it swaps in, so that affinity and spread
// plugins do work proportional to the pods and nodes that can matter
// instead of visiting every pod of the cluster each cycle:
//
//   - a label index: namespace → label key → label value → node → number
//     of pods, which answers "how many pods matching this selector does
//     each node hold" by walking only the nodes listed under the
//     selector's most selective equality/set requirement;
//   - a term index of the affinity terms existing pods carry, identical
//     terms aggregated into one TermGroup with per-node pod counts, and
//     looked up by the incoming pod's labels (each group is filed under
//     one of its selector's equality/set requirements), so the "existing
//     pods' (anti-)affinity" checks visit distinct matching terms only.

// labelIndex counts pods per node by namespace and label.
type labelIndex struct {
	ns map[string]*nsPods
	// terminating counts indexed pods with a deletion timestamp; queries
	// that must skip them fall back to checking pods while it is non-zero.
	terminating int
}

type nsPods struct {
	// all: node → pods of this namespace.
	all map[string]int32
	// labels: key → value → pods with that label.
	labels map[string]map[string]*valuePods
}

// valuePods are the pods of one namespace with one label value: per node,
// and per topology domain for each topology key asked about so far
// (created on first use, then kept up to date).
type valuePods struct {
	nodes   map[string]int32
	domains map[string]map[string]int32
}

func bump(m map[string]int32, k string, d int32) {
	if v := m[k] + d; v > 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}

func (x *labelIndex) update(node string, nodeLabels map[string]string, pi *PodInfo, d int32) {
	pod := pi.Pod
	if x.ns == nil {
		x.ns = map[string]*nsPods{}
	}
	np := x.ns[pod.Namespace]
	if np == nil {
		if d < 0 {
			return
		}
		np = &nsPods{all: map[string]int32{}, labels: map[string]map[string]*valuePods{}}
		x.ns[pod.Namespace] = np
	}
	if pod.DeletionTimestamp != nil {
		x.terminating += int(d)
	}
	bump(np.all, node, d)
	for k, v := range pod.Labels {
		byValue := np.labels[k]
		if byValue == nil {
			if d < 0 {
				continue
			}
			byValue = map[string]*valuePods{}
			np.labels[k] = byValue
		}
		vp := byValue[v]
		if vp == nil {
			if d < 0 {
				continue
			}
			vp = &valuePods{nodes: map[string]int32{}}
			byValue[v] = vp
		}
		bump(vp.nodes, node, d)
		for topo, m := range vp.domains {
			if dv, ok := nodeLabels[topo]; ok {
				bump(m, dv, d)
			}
		}
		if len(vp.nodes) == 0 {
			delete(byValue, v)
			if len(byValue) == 0 {
				delete(np.labels, k)
			}
		}
	}
	if len(np.all) == 0 {
		delete(x.ns, pod.Namespace)
	}
}

// TermKind says what an existing pod's affinity term is.
type TermKind uint8

// Kinds of terms in the term index.
const (
	TermRequiredAffinity TermKind = iota
	TermRequiredAntiAffinity
	TermPreferredAffinity
	TermPreferredAntiAffinity
)

// TermGroup is one distinct affinity term (same kind, weight and
// meaning) carried by existing pods, with the number of such pods per
// node. Plugins must not change it.
type TermGroup struct {
	Kind   TermKind
	Weight int32
	Term   *AffinityTerm
	// Nodes maps a node name to the number of its pods carrying the term.
	Nodes map[string]int32
	// Domains maps a value of the term's topology key to the number of
	// pods carrying the term on nodes with that value.
	Domains map[string]int32

	filedKey    string
	filedValues []string
}

type termIndex struct {
	groups map[string]*TermGroup
	// byLabel files each group under one equality/set requirement of its
	// selector: key → value → groups. A pod can only be selected by a
	// group filed under one of its own labels.
	byLabel map[string]map[string]map[*TermGroup]struct{}
	// unfiled groups have no such requirement and are always checked.
	unfiled map[*TermGroup]struct{}
}

func (x *termIndex) update(node string, nodeLabels map[string]string, pi *PodInfo, d int32) {
	if !pi.HasAffinity() {
		return
	}
	for i := range pi.RequiredAffinityTerms {
		x.updateTerm(node, nodeLabels, TermRequiredAffinity, 0, &pi.RequiredAffinityTerms[i], d)
	}
	for i := range pi.RequiredAntiAffinityTerms {
		x.updateTerm(node, nodeLabels, TermRequiredAntiAffinity, 0, &pi.RequiredAntiAffinityTerms[i], d)
	}
	for i := range pi.PreferredAffinityTerms {
		t := &pi.PreferredAffinityTerms[i]
		x.updateTerm(node, nodeLabels, TermPreferredAffinity, t.Weight, &t.AffinityTerm, d)
	}
	for i := range pi.PreferredAntiAffinityTerms {
		t := &pi.PreferredAntiAffinityTerms[i]
		x.updateTerm(node, nodeLabels, TermPreferredAntiAffinity, t.Weight, &t.AffinityTerm, d)
	}
}

func groupKey(kind TermKind, weight int32, t *AffinityTerm) string {
	return string(rune('0'+kind)) + "|" + itoa(int64(weight)) + "|" + t.Key
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

func (x *termIndex) updateTerm(node string, nodeLabels map[string]string, kind TermKind, weight int32, t *AffinityTerm, d int32) {
	if x.groups == nil {
		x.groups = map[string]*TermGroup{}
		x.byLabel = map[string]map[string]map[*TermGroup]struct{}{}
		x.unfiled = map[*TermGroup]struct{}{}
	}
	k := groupKey(kind, weight, t)
	g := x.groups[k]
	if g == nil {
		if d < 0 {
			return
		}
		g = &TermGroup{Kind: kind, Weight: weight, Term: t, Nodes: map[string]int32{}, Domains: map[string]int32{}}
		x.groups[k] = g
		x.file(g)
	}
	bump(g.Nodes, node, d)
	if dv, ok := nodeLabels[t.TopologyKey]; ok {
		bump(g.Domains, dv, d)
	}
	if len(g.Nodes) == 0 {
		delete(x.groups, k)
		x.unfile(g)
	}
}

// fileRequirement picks the requirement a selector is filed under: the
// equality or set requirement with the fewest values.
func fileRequirement(sel labels.Selector) (string, []string, bool) {
	reqs, ok := sel.Requirements()
	if !ok {
		return "", nil, false
	}
	best := -1
	for i := range reqs {
		switch reqs[i].Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if best < 0 || reqs[i].Values().Len() < reqs[best].Values().Len() {
				best = i
			}
		}
	}
	if best < 0 {
		return "", nil, false
	}
	return reqs[best].Key(), reqs[best].Values().List(), true
}

func (x *termIndex) file(g *TermGroup) {
	key, values, ok := fileRequirement(g.Term.Selector)
	if !ok {
		x.unfiled[g] = struct{}{}
		return
	}
	g.filedKey, g.filedValues = key, values
	byValue := x.byLabel[key]
	if byValue == nil {
		byValue = map[string]map[*TermGroup]struct{}{}
		x.byLabel[key] = byValue
	}
	for _, v := range values {
		set := byValue[v]
		if set == nil {
			set = map[*TermGroup]struct{}{}
			byValue[v] = set
		}
		set[g] = struct{}{}
	}
}

func (x *termIndex) unfile(g *TermGroup) {
	if g.filedValues == nil {
		delete(x.unfiled, g)
		return
	}
	byValue := x.byLabel[g.filedKey]
	for _, v := range g.filedValues {
		delete(byValue[v], g)
		if len(byValue[v]) == 0 {
			delete(byValue, v)
		}
	}
	if len(byValue) == 0 {
		delete(x.byLabel, g.filedKey)
	}
}

// indexNode updates both indexes for a node replaced by another version
// of itself (old or cur may be nil when the node comes or goes). PodInfos
// are immutable, so pods are compared by pointer; when the node's labels
// changed, every pod is moved from its old domains to its new ones.
func (s *Snapshot) indexNode(old, cur *NodeInfo) {
	if old == cur {
		return
	}
	if old != nil && cur != nil && old.Node() != cur.Node() && !sameLabels(old.Node().Labels, cur.Node().Labels) {
		s.indexNode(old, nil)
		s.indexNode(nil, cur)
		return
	}
	var name string
	var curLabels, oldLabels map[string]string
	if cur != nil {
		name, curLabels = cur.Name(), cur.Node().Labels
	}
	if old != nil {
		name, oldLabels = old.Name(), old.Node().Labels
	}
	var was map[*PodInfo]struct{}
	if old != nil && len(old.Pods) > 0 {
		was = make(map[*PodInfo]struct{}, len(old.Pods))
		for _, p := range old.Pods {
			was[p] = struct{}{}
		}
	}
	if cur != nil {
		for _, p := range cur.Pods {
			if _, ok := was[p]; ok {
				delete(was, p)
				continue
			}
			s.labels.update(name, curLabels, p, 1)
			s.terms.update(name, curLabels, p, 1)
		}
	}
	for p := range was {
		s.labels.update(name, oldLabels, p, -1)
		s.terms.update(name, oldLabels, p, -1)
	}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// DomainCounts returns, for the pods of namespace ns labelled key=value,
// the number per value of topologyKey among the nodes holding them. The
// map is kept up to date by the snapshot and must not be changed; it is
// built on first use for each topology key. Call it only from PreFilter or
// PreScore (not concurrently).
func (s *Snapshot) DomainCounts(ns, key, value, topologyKey string) map[string]int32 {
	np := s.labels.ns[ns]
	if np == nil {
		return nil
	}
	vp := np.labels[key][value]
	if vp == nil {
		return nil
	}
	if m, ok := vp.domains[topologyKey]; ok {
		return m
	}
	m := map[string]int32{}
	for node, n := range vp.nodes {
		if ni, ok := s.Get(node); ok {
			if dv, ok := ni.Node().Labels[topologyKey]; ok {
				m[dv] += n
			}
		}
	}
	if vp.domains == nil {
		vp.domains = map[string]map[string]int32{}
	}
	vp.domains[topologyKey] = m
	return m
}

// DomainSources lists the DomainCounts maps whose sum, per domain of
// topologyKey, is the number of pods the query selects, when the query is
// simple enough: namespaces by name and a selector of exactly one
// equality or set requirement. ok is false otherwise (use CountMatching).
func (s *Snapshot) DomainSources(q PodQuery, topologyKey string) (maps []map[string]int32, ok bool) {
	if q.NamespaceSelector != nil || q.Selector == nil || (q.SkipTerminating && s.labels.terminating > 0) {
		return nil, false
	}
	reqs, selectable := q.Selector.Requirements()
	if !selectable || len(reqs) != 1 {
		return nil, false
	}
	r := &reqs[0]
	switch r.Operator() {
	case selection.Equals, selection.DoubleEquals, selection.In:
	default:
		return nil, false
	}
	for ns := range q.Namespaces {
		for v := range r.Values() {
			if m := s.DomainCounts(ns, r.Key(), v, topologyKey); len(m) > 0 {
				maps = append(maps, m)
			}
		}
	}
	return maps, true
}

// PodQuery selects pods for Snapshot.CountMatching.
type PodQuery struct {
	// Namespaces lists namespaces by name.
	Namespaces map[string]struct{}
	// NamespaceSelector, if not nil, adds the namespaces whose labels it
	// matches.
	NamespaceSelector labels.Selector
	// Selector selects pods by label.
	Selector labels.Selector
	// SkipTerminating leaves out pods with a deletion timestamp.
	SkipTerminating bool
}

// QueryOf is the query for the pods an affinity term selects.
func QueryOf(t *AffinityTerm) PodQuery {
	q := PodQuery{Namespaces: t.Namespaces, Selector: t.Selector}
	if t.HasNamespaceSelector {
		q.NamespaceSelector = t.NamespaceSelector
	}
	return q
}

// CountMatching calls fn with each node holding pods the query selects
// and their number (a node may be reported once per namespace; add the
// counts up). Its cost grows with the nodes listed under the selector's
// most selective equality or set requirement, not with the cluster's pod
// count; selectors with no such requirement fall back to checking the
// pods of the nodes holding pods of the namespaces.
func (s *Snapshot) CountMatching(q PodQuery, fn func(ni *NodeInfo, n int)) {
	if s.labels.ns == nil || q.Selector == nil {
		return
	}
	if q.NamespaceSelector != nil {
		for ns := range s.labels.ns {
			_, listed := q.Namespaces[ns]
			if listed || q.NamespaceSelector.Matches(s.NamespaceLabels[ns]) {
				s.countNamespace(ns, q, fn)
			}
		}
		return
	}
	for ns := range q.Namespaces {
		s.countNamespace(ns, q, fn)
	}
}

func (s *Snapshot) countNamespace(ns string, q PodQuery, fn func(ni *NodeInfo, n int)) {
	np := s.labels.ns[ns]
	if np == nil {
		return
	}
	reqs, ok := q.Selector.Requirements()
	if !ok {
		return // selects nothing
	}
	checkEach := q.SkipTerminating && s.labels.terminating > 0
	best, bestCost := -1, 0
	for i := range reqs {
		var cost int
		switch reqs[i].Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			for v := range reqs[i].Values() {
				if vp := np.labels[reqs[i].Key()][v]; vp != nil {
					cost += len(vp.nodes)
				}
			}
		case selection.Exists:
			for _, vp := range np.labels[reqs[i].Key()] {
				cost += len(vp.nodes)
			}
		default:
			continue
		}
		if best < 0 || cost < bestCost {
			best, bestCost = i, cost
		}
	}
	if best < 0 {
		// Only negative requirements (or none): every node with pods of
		// the namespace is a candidate.
		if len(reqs) == 0 && !checkEach {
			for node, n := range np.all {
				if ni, ok := s.Get(node); ok {
					fn(ni, int(n))
				}
			}
			return
		}
		for node := range np.all {
			s.countOnNode(node, ns, q, fn)
		}
		return
	}
	r := &reqs[best]
	byValue := np.labels[r.Key()]
	exact := len(reqs) == 1 && !checkEach
	var lists []map[string]int32
	if r.Operator() == selection.Exists {
		for _, vp := range byValue {
			lists = append(lists, vp.nodes)
		}
	} else {
		for v := range r.Values() {
			if vp := byValue[v]; vp != nil {
				lists = append(lists, vp.nodes)
			}
		}
	}
	if exact {
		// A pod has one value per key, so the lists never count a pod
		// twice.
		for _, nodes := range lists {
			for node, n := range nodes {
				if ni, ok := s.Get(node); ok {
					fn(ni, int(n))
				}
			}
		}
		return
	}
	if len(lists) == 1 {
		for node := range lists[0] {
			s.countOnNode(node, ns, q, fn)
		}
		return
	}
	seen := map[string]struct{}{}
	for _, nodes := range lists {
		for node := range nodes {
			if _, dup := seen[node]; !dup {
				seen[node] = struct{}{}
				s.countOnNode(node, ns, q, fn)
			}
		}
	}
}

func (s *Snapshot) countOnNode(node, ns string, q PodQuery, fn func(ni *NodeInfo, n int)) {
	ni, ok := s.Get(node)
	if !ok {
		return
	}
	n := 0
	for _, p := range ni.Pods {
		if p.Pod.Namespace == ns && !(q.SkipTerminating && p.Pod.DeletionTimestamp != nil) && q.Selector.Matches(labels.Set(p.Pod.Labels)) {
			n++
		}
	}
	if n > 0 {
		fn(ni, n)
	}
}

// TermsSelecting calls fn for every distinct affinity term of existing
// pods that selects pod (namespace and labels), whatever its kind. Its
// cost grows with the terms filed under the pod's labels.
func (s *Snapshot) TermsSelecting(pod *v1.Pod, fn func(g *TermGroup)) {
	if len(s.terms.groups) == 0 {
		return
	}
	nsLabels := s.NamespaceLabelsOf(pod.Namespace)
	for k, v := range pod.Labels {
		for g := range s.terms.byLabel[k][v] {
			if g.Term.Matches(pod, nsLabels) {
				fn(g)
			}
		}
	}
	for g := range s.terms.unfiled {
		if g.Term.Matches(pod, nsLabels) {
			fn(g)
		}
	}
}

// HasTerms reports whether any existing pod carries an affinity term.
func (s *Snapshot) HasTerms() bool { return len(s.terms.groups) > 0 }

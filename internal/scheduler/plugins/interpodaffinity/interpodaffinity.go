package interpodaffinity

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "interpodaffinity"

// Reasons reported by Filter.
const (
	ReasonAffinity         = "node(s) didn't match pod affinity rules"
	ReasonAntiAffinity     = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingAntiAffn = "node(s) didn't satisfy existing pods anti-affinity rules"
)

func init() {
	framework.Register(framework.KindFilter, Name, "inter-pod affinity and anti-affinity, required and preferred", New)
}

// Args configure the plugin.
type Args struct {
	// HardPodAffinityWeight is the score weight given to an existing pod's
	// required affinity term that matches the incoming pod (0..100,
	// default 1).
	HardPodAffinityWeight *int32 `json:"hardPodAffinityWeight,omitempty"`
}

// Plugin implements PreFilter, Filter, PreScore and Score.
type Plugin struct {
	h          framework.Handle
	hardWeight int64
}

// New is the factory.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	var args Args
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	p := &Plugin{h: h, hardWeight: 1}
	if w := args.HardPodAffinityWeight; w != nil {
		if *w < 0 || *w > 100 {
			return nil, fmt.Errorf("hardPodAffinityWeight %d is outside 0..100", *w)
		}
		p.hardWeight = int64(*w)
	}
	return p, nil
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// domainSource counts pods per value of one topology key: the sum of
// maps shared with the snapshot's indexes (read only) and of counts
// computed in this cycle.
type domainSource struct {
	key    string
	maps   []map[string]int32
	extra  map[string]int64
	weight int64
	// dom and byDomain, set by dense: the key's domain numbering and the
	// count per domain number, so that a node's count is two array reads.
	dom      *framework.DomainIndex
	byDomain []int64
}

// dense fills dom and byDomain. Its cost is the size of the count maps
// plus one slot per domain, whatever the number of nodes.
func (d *domainSource) dense(snap *framework.Snapshot) {
	d.dom = snap.Domains(d.key)
	d.byDomain = make([]int64, len(d.dom.Values))
	add := func(v string, n int64) {
		if id, ok := d.dom.ID[v]; ok {
			d.byDomain[id] += n
		}
	}
	for _, m := range d.maps {
		for v, n := range m {
			add(v, int64(n))
		}
	}
	for v, n := range d.extra {
		add(v, n)
	}
}

func (d *domainSource) get(v string) int64 {
	n := d.extra[v]
	for _, m := range d.maps {
		n += int64(m[v])
	}
	return n
}

// each calls fn with every domain holding a pod the source counts (all
// counts kept are positive).
func (d *domainSource) each(fn func(v string)) {
	for _, m := range d.maps {
		for v := range m {
			fn(v)
		}
	}
	for v, n := range d.extra {
		if n > 0 {
			fn(v)
		}
	}
}

func (d *domainSource) empty() bool {
	for _, m := range d.maps {
		if len(m) > 0 {
			return false
		}
	}
	return len(d.extra) == 0
}

// countTerm returns the pods t selects per domain of its topology key,
// from the index maps when the selector allows, else by counting.
func countTerm(snap *framework.Snapshot, t *framework.AffinityTerm, w int64) domainSource {
	src := domainSource{key: t.TopologyKey, weight: w}
	q := framework.QueryOf(t)
	if maps, ok := snap.DomainSources(q, t.TopologyKey); ok {
		src.maps = maps
		return src
	}
	src.extra = map[string]int64{}
	snap.CountMatching(q, func(ni *framework.NodeInfo, n int) {
		if v, ok := ni.Node().Labels[t.TopologyKey]; ok {
			src.extra[v] += int64(n)
		}
	})
	return src
}

const (
	filterKey framework.StateKey = Name + "/prefilter"
	scoreKey  framework.StateKey = Name + "/prescore"
)

type filterState struct {
	// existingAnti: per existing required anti-affinity term selecting
	// the incoming pod, the domains holding pods with that term.
	existingAnti []domainSource
	// affinity[j]: per domain of the j-th required affinity term's key,
	// pods matching all the incoming pod's required affinity terms.
	affinity []domainSource
	// affinityFound: some pod matches all required affinity terms.
	affinityFound bool
	// anti[j]: per domain, pods matching the j-th anti-affinity term.
	anti []domainSource
	// selfMatch: the incoming pod matches all its own affinity terms.
	selfMatch bool
	// blocked is the anti-affinity verdict per position in the
	// snapshot's nodes: 0 none, blockedAnti, blockedExisting. Filter then
	// reads one byte per node instead of looking each node's domains up
	// in every count map. It is built by the Filter call that finds more
	// than blockAfter calls made in this cycle (canBlock): with kept
	// results only the few changed nodes are filtered, and building it
	// would cost more than those lookups.
	canBlock bool
	calls    atomic.Int32
	once     sync.Once
	built    atomic.Bool
	blocked  []uint8
	snap     *framework.Snapshot
	// local: the verdict on a node depends only on the pods of that node
	// (see perNode), so kept verdicts may be reused.
	local bool
	// dense: every source has per-domain counts (domainSource.dense), so
	// Filter reads arrays by the node's position in snap. Set when the
	// verdicts are not local: every node is then filtered in each cycle,
	// and a few zones' verdicts are computed once instead of per node.
	dense bool
}

var (
	statusAffinity     = framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinity).WithPlugin(Name)
	statusAnti         = framework.NewStatus(framework.Unschedulable, ReasonAntiAffinity).WithPlugin(Name)
	statusExistingAnti = framework.NewStatus(framework.Unschedulable, ReasonExistingAntiAffn).WithPlugin(Name)
)

const (
	blockedAnti     uint8 = 1
	blockedExisting uint8 = 2
	blockAfter            = 32
)

// block fills s.blocked from the anti-affinity sources: for each domain
// holding a counted pod, the nodes of that domain.
func (s *filterState) block() {
	snap := s.snap
	s.blocked = make([]uint8, len(snap.NodeInfos))
	mark := func(src *domainSource, why uint8) {
		src.each(func(v string) {
			for _, i := range snap.NodesInDomain(src.key, v) {
				// The incoming pod's own terms are reported first, as
				// Filter checks them first.
				if s.blocked[i] == 0 || why == blockedAnti {
					s.blocked[i] = why
				}
			}
		})
	}
	for i := range s.existingAnti {
		mark(&s.existingAnti[i], blockedExisting)
	}
	for i := range s.anti {
		mark(&s.anti[i], blockedAnti)
	}
	s.built.Store(true)
}

func (s *filterState) Clone() framework.StateData { return s }

// perNode reports whether t counts pods per node: its topology key has a
// distinct value on every node (kubernetes.io/hostname), and the pods it
// selects do not depend on namespace labels. A node's verdict and raw
// score from such terms then change only with that node's pods and
// labels, that is with its NodeInfo.
func perNode(snap *framework.Snapshot, t *framework.AffinityTerm) bool {
	return !t.HasNamespaceSelector && snap.PerNodeDomains(t.TopologyKey)
}

// NodeLocalIn implements framework.CycleNodeLocalPlugin: the plugin is
// node-local for a pod without required affinity terms when every term
// it evaluates (the pod's own, and existing pods' terms selecting it)
// counts pods per node.
func (*Plugin) NodeLocalIn(state *framework.CycleState, score bool) bool {
	if score {
		s, err := framework.ReadState[*scoreState](state, scoreKey)
		return err == nil && s.local
	}
	s, err := framework.ReadState[*filterState](state, filterKey)
	return err == nil && s.local
}

func matchesAll(terms []framework.AffinityTerm, pod *v1.Pod, nsLabels labels.Set) bool {
	for i := range terms {
		if !terms[i].Matches(pod, nsLabels) {
			return false
		}
	}
	return len(terms) > 0
}

// PreFilter gathers, once for this pod, the per-domain counts Filter
// needs from the snapshot's indexes: existing pods' anti-affinity terms
// that select this pod, and the pods this pod's own terms select. For
// the usual selectors (one equality or set requirement) this is a few map
// lookups, whatever the number of pods and nodes.
func (p *Plugin) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	if pod.ParseError != nil {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("invalid pod affinity: %v", pod.ParseError))
	}
	snap := p.h.Snapshot()
	s := &filterState{}
	aff, anti := pod.RequiredAffinityTerms, pod.RequiredAntiAffinityTerms
	// Required affinity is never node-local: whether some pod matches
	// anywhere decides where the first pod of a group may go.
	s.local = len(aff) == 0
	snap.TermsSelecting(pod.Pod, func(g *framework.TermGroup) {
		if g.Kind == framework.TermRequiredAntiAffinity {
			s.local = s.local && perNode(snap, g.Term)
			if len(g.Domains) > 0 {
				s.existingAnti = append(s.existingAnti, domainSource{key: g.Term.TopologyKey, maps: []map[string]int32{g.Domains}})
			}
		}
	})
	for j := range anti {
		s.local = s.local && perNode(snap, &anti[j])
	}
	if len(aff) == 0 && len(anti) == 0 {
		if len(s.existingAnti) == 0 {
			return nil, framework.NewStatus(framework.Skip)
		}
		s.prepareBlock(snap)
		state.Write(filterKey, s)
		return nil, nil
	}
	s.selfMatch = matchesAll(aff, pod.Pod, snap.NamespaceLabelsOf(pod.Pod.Namespace))
	switch {
	case len(aff) == 1:
		src := countTerm(snap, &aff[0], 1)
		s.affinity = []domainSource{src}
		s.affinityFound = !src.empty()
	case len(aff) > 1:
		// A pod must match every term: find candidates through the first
		// term, recount their nodes' pods against all terms.
		candidates := map[*framework.NodeInfo]struct{}{}
		snap.CountMatching(framework.QueryOf(&aff[0]), func(ni *framework.NodeInfo, _ int) { candidates[ni] = struct{}{} })
		s.affinity = make([]domainSource, len(aff))
		for j := range aff {
			s.affinity[j] = domainSource{key: aff[j].TopologyKey, extra: map[string]int64{}}
		}
		for ni := range candidates {
			var c int64
			for _, e := range ni.Pods {
				if e.Pod.UID != pod.Pod.UID && matchesAll(aff, e.Pod, snap.NamespaceLabelsOf(e.Pod.Namespace)) {
					c++
				}
			}
			if c == 0 {
				continue
			}
			s.affinityFound = true
			for j := range aff {
				if v, ok := ni.Node().Labels[aff[j].TopologyKey]; ok {
					s.affinity[j].extra[v] += c
				}
			}
		}
	}
	for j := range anti {
		s.anti = append(s.anti, countTerm(snap, &anti[j], 1))
	}
	s.prepareBlock(snap)
	state.Write(filterKey, s)
	return nil, nil
}

// prepareBlock lets Filter build blocked (see canBlock) for a pod without
// required affinity terms, and makes the sources dense (see dense) for a
// pod with them when the verdicts are not local.
func (s *filterState) prepareBlock(snap *framework.Snapshot) {
	s.snap = snap
	s.canBlock = len(s.affinity) == 0 && (len(s.anti) > 0 || len(s.existingAnti) > 0)
	if s.canBlock || s.local {
		return
	}
	s.dense = true
	for _, srcs := range [][]domainSource{s.affinity, s.anti, s.existingAnti} {
		for i := range srcs {
			srcs[i].dense(snap)
		}
	}
}

// filterAt is Filter for the node at position i of the snapshot, from the
// per-domain counts.
func (s *filterState) filterAt(i int) *framework.Status {
	if len(s.affinity) > 0 {
		found := true
		for j := range s.affinity {
			src := &s.affinity[j]
			d := src.dom.IDs[i]
			if d < 0 {
				return statusAffinity
			}
			if src.byDomain[d] <= 0 {
				found = false
			}
		}
		if !found && !(!s.affinityFound && s.selfMatch) {
			return statusAffinity
		}
	}
	for j := range s.anti {
		src := &s.anti[j]
		if d := src.dom.IDs[i]; d >= 0 && src.byDomain[d] > 0 {
			return statusAnti
		}
	}
	for j := range s.existingAnti {
		src := &s.existingAnti[j]
		if d := src.dom.IDs[i]; d >= 0 && src.byDomain[d] > 0 {
			return statusExistingAnti
		}
	}
	return nil
}

// Filter checks the node's domains against the gathered counts.
func (p *Plugin) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	s, err := framework.ReadState[*filterState](state, filterKey)
	if err != nil {
		return framework.AsStatus(err)
	}
	// Once built, the counter is no longer touched (workers on other
	// cores would contend for its cache line).
	if s.canBlock && (s.built.Load() || s.calls.Add(1) > blockAfter) {
		s.once.Do(s.block)
		if i, ok := s.snap.Position(node); ok {
			// Shared statuses: thousands of nodes may be rejected per
			// cycle, and none of them is changed afterwards.
			switch s.blocked[i] {
			case blockedAnti:
				return statusAnti
			case blockedExisting:
				return statusExistingAnti
			}
			return nil
		}
	}
	if s.dense {
		if i, ok := s.snap.Position(node); ok {
			return s.filterAt(i)
		}
	}
	nodeLabels := node.Node().Labels
	if terms := pod.RequiredAffinityTerms; len(terms) > 0 {
		found := true
		for i := range terms {
			v, ok := nodeLabels[terms[i].TopologyKey]
			if !ok {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinity)
			}
			if s.affinity[i].get(v) <= 0 {
				found = false
			}
		}
		// The first pod of a group that selects itself may go anywhere
		// its topology keys exist.
		if !found && !(!s.affinityFound && s.selfMatch) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinity)
		}
	}
	for i := range s.anti {
		if v, ok := nodeLabels[s.anti[i].key]; ok && s.anti[i].get(v) > 0 {
			return framework.NewStatus(framework.Unschedulable, ReasonAntiAffinity)
		}
	}
	for i := range s.existingAnti {
		if v, ok := nodeLabels[s.existingAnti[i].key]; ok && s.existingAnti[i].get(v) > 0 {
			return framework.NewStatus(framework.Unschedulable, ReasonExistingAntiAffn)
		}
	}
	return nil
}

type scoreState struct {
	sources []domainSource
	// local: every term scored counts pods per node (perNode).
	local bool
	// byKey, when not local: per topology key of the sources, the
	// weighted sum of their counts per domain, read by the node's
	// position in snap.
	byKey []domainSum
	snap  *framework.Snapshot
}

type domainSum struct {
	dom *framework.DomainIndex
	sum []int64
}

func (s *scoreState) Clone() framework.StateData { return s }

// PreScore gathers weighted per-domain counts: the incoming pod's
// preferred terms against the pods they select, and existing pods' terms
// (preferred, and required affinity with hardPodAffinityWeight) that
// select the incoming pod.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	snap := p.h.Snapshot()
	ownPreferred := len(pod.PreferredAffinityTerms)+len(pod.PreferredAntiAffinityTerms) > 0
	if !ownPreferred && !snap.HasTerms() {
		return framework.NewStatus(framework.Skip)
	}
	var sources []domainSource
	local := true
	add := func(src domainSource) {
		if src.weight != 0 && !src.empty() {
			sources = append(sources, src)
		}
	}
	for i := range pod.PreferredAffinityTerms {
		t := &pod.PreferredAffinityTerms[i]
		local = local && perNode(snap, &t.AffinityTerm)
		add(countTerm(snap, &t.AffinityTerm, int64(t.Weight)))
	}
	for i := range pod.PreferredAntiAffinityTerms {
		t := &pod.PreferredAntiAffinityTerms[i]
		local = local && perNode(snap, &t.AffinityTerm)
		add(countTerm(snap, &t.AffinityTerm, -int64(t.Weight)))
	}
	snap.TermsSelecting(pod.Pod, func(g *framework.TermGroup) {
		var w int64
		switch g.Kind {
		case framework.TermPreferredAffinity:
			w = int64(g.Weight)
		case framework.TermPreferredAntiAffinity:
			w = -int64(g.Weight)
		case framework.TermRequiredAffinity:
			w = p.hardWeight
		default:
			return
		}
		local = local && perNode(snap, g.Term)
		add(domainSource{key: g.Term.TopologyKey, maps: []map[string]int32{g.Domains}, weight: w})
	})
	if len(sources) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	ss := &scoreState{sources: sources, local: local}
	if !local {
		ss.snap = snap
		for i := range sources {
			src := &sources[i]
			src.dense(snap)
			k := 0
			for k < len(ss.byKey) && ss.byKey[k].dom != src.dom {
				k++
			}
			if k == len(ss.byKey) {
				ss.byKey = append(ss.byKey, domainSum{dom: src.dom, sum: make([]int64, len(src.dom.Values))})
			}
			for d, n := range src.byDomain {
				ss.byKey[k].sum[d] += src.weight * n
			}
		}
	}
	state.Write(scoreKey, ss)
	return nil
}

// Score sums the weighted counts of the node's domains.
func (p *Plugin) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*scoreState](state, scoreKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	var v int64
	if s.byKey != nil {
		if i, ok := s.snap.Position(node); ok {
			for k := range s.byKey {
				if d := s.byKey[k].dom.IDs[i]; d >= 0 {
					v += s.byKey[k].sum[d]
				}
			}
			return v, nil
		}
	}
	nodeLabels := node.Node().Labels
	for i := range s.sources {
		if lv, ok := nodeLabels[s.sources[i].key]; ok {
			v += s.sources[i].weight * s.sources[i].get(lv)
		}
	}
	return v, nil
}

// NormalizeScore maps the lowest raw score to 0 and the highest to 100.
func (*Plugin) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	framework.MinMaxNormalizeScore(framework.MaxNodeScore, scores)
	return nil
}

// EventsToRegister: pods coming and going, node labels, namespace labels.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.EventAssignedPod, Action: framework.All},
		{Resource: framework.EventNode, Action: framework.Add | framework.Update},
		{Resource: framework.EventNamespace, Action: framework.Add | framework.Update},
	}
}

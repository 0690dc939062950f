package interpodaffinity

import (
	"context"
	"encoding/json"
	"fmt"

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

// topoCounts maps topology key → value → count (or weight).
type topoCounts map[string]map[string]int64

func (t topoCounts) add(key, value string, n int64) {
	m := t[key]
	if m == nil {
		m = map[string]int64{}
		t[key] = m
	}
	m[value] += n
}

func (t topoCounts) get(key, value string) int64 { return t[key][value] }

const (
	filterKey framework.StateKey = Name + "/prefilter"
	scoreKey  framework.StateKey = Name + "/prescore"
)

type filterState struct {
	// existingAnti: domains where some existing pod's required
	// anti-affinity term selects the incoming pod.
	existingAnti topoCounts
	// affinity: per domain, pods matching all the incoming pod's required
	// affinity terms.
	affinity topoCounts
	// anti: per domain, pods matching one of the incoming pod's required
	// anti-affinity terms.
	anti topoCounts
	// selfMatch: the incoming pod matches all its own affinity terms.
	selfMatch bool
}

func (s *filterState) Clone() framework.StateData { return s }

func matchesAll(terms []framework.AffinityTerm, pod *v1.Pod, nsLabels labels.Set) bool {
	for i := range terms {
		if !terms[i].Matches(pod, nsLabels) {
			return false
		}
	}
	return len(terms) > 0
}

// PreFilter counts matching pods per topology domain, once for this pod.
func (p *Plugin) PreFilter(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	if pod.ParseError != nil {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("invalid pod affinity: %v", pod.ParseError))
	}
	snap := p.h.Snapshot()
	podNS := snap.NamespaceLabelsOf(pod.Pod.Namespace)
	s := &filterState{existingAnti: topoCounts{}, affinity: topoCounts{}, anti: topoCounts{}}

	// Existing pods whose required anti-affinity selects this pod.
	for _, ni := range snap.HavePodsWithRequiredAntiAffinity {
		nodeLabels := ni.Node().Labels
		for _, e := range ni.PodsWithRequiredAntiAffinity {
			for i := range e.RequiredAntiAffinityTerms {
				t := &e.RequiredAntiAffinityTerms[i]
				if v, ok := nodeLabels[t.TopologyKey]; ok && t.Matches(pod.Pod, podNS) {
					s.existingAnti.add(t.TopologyKey, v, 1)
				}
			}
		}
	}

	aff, anti := pod.RequiredAffinityTerms, pod.RequiredAntiAffinityTerms
	if len(aff) == 0 && len(anti) == 0 {
		if len(s.existingAnti) == 0 {
			return nil, framework.NewStatus(framework.Skip)
		}
		state.Write(filterKey, s)
		return nil, nil
	}
	s.selfMatch = matchesAll(aff, pod.Pod, podNS)

	// One parallel pass over every pod: per node, how many match all
	// affinity terms and how many match each anti-affinity term.
	nodes := snap.NodeInfos
	var affMatch []int32
	if len(aff) > 0 {
		affMatch = make([]int32, len(nodes))
	}
	antiMatch := make([]int32, len(nodes)*len(anti))
	p.h.Parallelizer().Until(ctx, len(nodes), func(i int) {
		for _, e := range nodes[i].Pods {
			if e.Pod.UID == pod.Pod.UID {
				continue
			}
			var nsl labels.Set
			if snap.NamespaceLabels != nil {
				nsl = snap.NamespaceLabels[e.Pod.Namespace]
			}
			if affMatch != nil && matchesAll(aff, e.Pod, nsl) {
				affMatch[i]++
			}
			for j := range anti {
				if anti[j].Matches(e.Pod, nsl) {
					antiMatch[i*len(anti)+j]++
				}
			}
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, framework.AsStatus(err)
	}
	for i, ni := range nodes {
		nodeLabels := ni.Node().Labels
		if affMatch != nil && affMatch[i] > 0 {
			for j := range aff {
				if v, ok := nodeLabels[aff[j].TopologyKey]; ok {
					s.affinity.add(aff[j].TopologyKey, v, int64(affMatch[i]))
				}
			}
		}
		for j := range anti {
			if c := antiMatch[i*len(anti)+j]; c > 0 {
				if v, ok := nodeLabels[anti[j].TopologyKey]; ok {
					s.anti.add(anti[j].TopologyKey, v, int64(c))
				}
			}
		}
	}
	state.Write(filterKey, s)
	return nil, nil
}

// Filter checks the node's domains against the precomputed counts.
func (p *Plugin) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	s, err := framework.ReadState[*filterState](state, filterKey)
	if err != nil {
		return framework.AsStatus(err)
	}
	nodeLabels := node.Node().Labels
	if terms := pod.RequiredAffinityTerms; len(terms) > 0 {
		found := true
		for i := range terms {
			v, ok := nodeLabels[terms[i].TopologyKey]
			if !ok {
				return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinity)
			}
			if s.affinity.get(terms[i].TopologyKey, v) <= 0 {
				found = false
			}
		}
		// The first pod of a group that selects itself may go anywhere
		// its topology keys exist.
		if !found && !(len(s.affinity) == 0 && s.selfMatch) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonAffinity)
		}
	}
	for i := range pod.RequiredAntiAffinityTerms {
		t := &pod.RequiredAntiAffinityTerms[i]
		if v, ok := nodeLabels[t.TopologyKey]; ok && s.anti.get(t.TopologyKey, v) > 0 {
			return framework.NewStatus(framework.Unschedulable, ReasonAntiAffinity)
		}
	}
	for key, values := range s.existingAnti {
		if v, ok := nodeLabels[key]; ok && values[v] > 0 {
			return framework.NewStatus(framework.Unschedulable, ReasonExistingAntiAffn)
		}
	}
	return nil
}

type scoreState struct{ topo topoCounts }

func (s *scoreState) Clone() framework.StateData { return s }

// PreScore sums preferred-term weights per topology domain: the incoming
// pod's preferred terms against every pod, and existing pods' terms
// against the incoming pod.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) *framework.Status {
	snap := p.h.Snapshot()
	ownPreferred := len(pod.PreferredAffinityTerms)+len(pod.PreferredAntiAffinityTerms) > 0
	if !ownPreferred && len(snap.HavePodsWithAffinity) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	podNS := snap.NamespaceLabelsOf(pod.Pod.Namespace)
	topo := topoCounts{}
	visit := func(ni *framework.NodeInfo, e *framework.PodInfo) {
		if e.Pod.UID == pod.Pod.UID {
			return
		}
		nodeLabels := ni.Node().Labels
		add := func(t *framework.AffinityTerm, w int64) {
			if v, ok := nodeLabels[t.TopologyKey]; ok && w != 0 {
				topo.add(t.TopologyKey, v, w)
			}
		}
		if ownPreferred {
			nsl := snap.NamespaceLabelsOf(e.Pod.Namespace)
			for i := range pod.PreferredAffinityTerms {
				if t := &pod.PreferredAffinityTerms[i]; t.Matches(e.Pod, nsl) {
					add(&t.AffinityTerm, int64(t.Weight))
				}
			}
			for i := range pod.PreferredAntiAffinityTerms {
				if t := &pod.PreferredAntiAffinityTerms[i]; t.Matches(e.Pod, nsl) {
					add(&t.AffinityTerm, -int64(t.Weight))
				}
			}
		}
		if !e.HasAffinity() {
			return
		}
		for i := range e.PreferredAffinityTerms {
			if t := &e.PreferredAffinityTerms[i]; t.Matches(pod.Pod, podNS) {
				add(&t.AffinityTerm, int64(t.Weight))
			}
		}
		for i := range e.PreferredAntiAffinityTerms {
			if t := &e.PreferredAntiAffinityTerms[i]; t.Matches(pod.Pod, podNS) {
				add(&t.AffinityTerm, -int64(t.Weight))
			}
		}
		for i := range e.RequiredAffinityTerms {
			if t := &e.RequiredAffinityTerms[i]; t.Matches(pod.Pod, podNS) {
				add(t, p.hardWeight)
			}
		}
	}
	if ownPreferred {
		for _, ni := range snap.NodeInfos {
			for _, e := range ni.Pods {
				visit(ni, e)
			}
		}
	} else {
		for _, ni := range snap.HavePodsWithAffinity {
			for _, e := range ni.PodsWithAffinity {
				visit(ni, e)
			}
		}
	}
	if len(topo) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(scoreKey, &scoreState{topo: topo})
	return nil
}

// Score sums the weights of the node's domains.
func (p *Plugin) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*scoreState](state, scoreKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	var v int64
	nodeLabels := node.Node().Labels
	for key, values := range s.topo {
		if lv, ok := nodeLabels[key]; ok {
			v += values[lv]
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

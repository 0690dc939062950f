package podtopologyspread

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "podtopologyspread"

// Reasons reported by Filter.
const (
	ReasonSkew         = "node(s) didn't match pod topology spread constraints"
	ReasonMissingLabel = "node(s) didn't match pod topology spread constraints (missing required label)"
)

func init() {
	framework.Register(framework.KindFilter, Name, "topology spread constraints: hard filter, soft score", New)
}

// Plugin implements PreFilter, Filter, PreScore and Score.
type Plugin struct {
	h framework.Handle
	// defaults apply to pods without constraints of their own; system
	// tells they are SystemDefaultConstraints (a node lacking one of their
	// keys is still scored on the others).
	defaults []v1.TopologySpreadConstraint
	system   bool
	listers  *listers
}

// New is the factory; args: see Args.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	var args Args
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if err := validateArgs(&args); err != nil {
		return nil, err
	}
	p := &Plugin{h: h, defaults: args.DefaultConstraints}
	if args.DefaultingType != DefaultingList {
		p.defaults, p.system = SystemDefaultConstraints, true
	}
	if len(p.defaults) > 0 {
		// Without listers (tests, simulations) no selector can be
		// derived, and defaults do not apply.
		p.listers = newListers(h)
	}
	return p, nil
}

// constraints returns the pod's own constraints, or the defaults with a
// selector from its workload; optional is true for system defaults.
func (p *Plugin) constraints(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]*constraint, error) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 || p.listers == nil {
		return parse(pod, action)
	}
	var cs []*constraint
	var sel labels.Selector
	for _, d := range p.defaults {
		if d.WhenUnsatisfiable != action {
			continue
		}
		if sel == nil {
			if sel = p.listers.defaultSelector(pod); sel.Empty() {
				return nil, nil
			}
		}
		c := &constraint{key: d.TopologyKey, maxSkew: int64(d.MaxSkew), minDomains: 1, selector: sel,
			honorAffinity: true, optional: p.system, counts: map[string]int64{}}
		if sel.Matches(labels.Set(pod.Labels)) {
			c.selfMatch = 1
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

type constraint struct {
	key            string
	maxSkew        int64
	minDomains     int
	selector       labels.Selector
	honorAffinity  bool
	honorTaints    bool
	selfMatch      int64
	counts         map[string]int64
	minMatch       int64
	domainsCounted int
	// optional: a node lacking key is left out of this constraint only
	// (system defaults), not of all of the pod's constraints.
	optional bool
}

// Constraints parses the pod's constraints with the given action.
func parse(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]*constraint, error) {
	var out []*constraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("topology spread selector: %w", err)
		}
		for _, k := range c.MatchLabelKeys {
			if v, ok := pod.Labels[k]; ok {
				r, err := labels.NewRequirement(k, selection.In, []string{v})
				if err != nil {
					return nil, fmt.Errorf("matchLabelKeys: %w", err)
				}
				sel = sel.Add(*r)
			}
		}
		pc := &constraint{
			key:           c.TopologyKey,
			maxSkew:       int64(c.MaxSkew),
			minDomains:    1,
			selector:      sel,
			honorAffinity: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor,
			honorTaints:   c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor,
			counts:        map[string]int64{},
		}
		if c.MinDomains != nil && *c.MinDomains > 0 {
			pc.minDomains = int(*c.MinDomains)
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			pc.selfMatch = 1
		}
		out = append(out, pc)
	}
	return out, nil
}

// hasKeys reports whether node carries the topology key of every
// constraint that is not optional.
func hasKeys(node *v1.Node, cs []*constraint) bool {
	for _, c := range cs {
		if _, ok := node.Labels[c.key]; !ok && !c.optional {
			return false
		}
	}
	return true
}

func untoleratedTaint(node *v1.Node, tols []v1.Toleration) bool {
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		ok := false
		for j := range tols {
			if tols[j].ToleratesTaint(logr.Discard(), t, false) {
				ok = true
				break
			}
		}
		if !ok {
			return true
		}
	}
	return false
}

// count fills each constraint's per-domain counts: one pass over the
// nodes registers the domains of the nodes the constraint's policies
// include (with zero), then the snapshot's label index reports only the
// nodes holding matching pods.
func count(snap *framework.Snapshot, pod *v1.Pod, cs []*constraint) {
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	needPolicy := false
	for _, c := range cs {
		needPolicy = needPolicy || c.honorAffinity || c.honorTaints
	}
	// excluded[i] lists the nodes constraint i leaves out; nil when none.
	excluded := make([]map[string]bool, len(cs))
	for _, ni := range snap.NodeInfos {
		node := ni.Node()
		if !hasKeys(node, cs) {
			for i := range cs {
				if excluded[i] == nil {
					excluded[i] = map[string]bool{}
				}
				excluded[i][node.Name] = true
			}
			continue
		}
		var affOK, taintOK *bool
		for i, c := range cs {
			if needPolicy {
				include := true
				if c.honorAffinity {
					if affOK == nil {
						m, _ := required.Match(node)
						affOK = &m
					}
					include = *affOK
				}
				if include && c.honorTaints {
					if taintOK == nil {
						t := !untoleratedTaint(node, pod.Spec.Tolerations)
						taintOK = &t
					}
					include = *taintOK
				}
				if !include {
					if excluded[i] == nil {
						excluded[i] = map[string]bool{}
					}
					excluded[i][node.Name] = true
					continue
				}
			}
			v, ok := node.Labels[c.key]
			if !ok {
				// Only optional constraints get here without their key.
				if excluded[i] == nil {
					excluded[i] = map[string]bool{}
				}
				excluded[i][node.Name] = true
				continue
			}
			if _, ok := c.counts[v]; !ok {
				c.counts[v] = 0
			}
		}
	}
	ns := map[string]struct{}{pod.Namespace: {}}
	for i, c := range cs {
		q := framework.PodQuery{Namespaces: ns, Selector: c.selector, SkipTerminating: true}
		if excluded[i] == nil {
			// Every node counts: take the per-domain counts the snapshot
			// keeps, for the domains registered above.
			if maps, ok := snap.DomainSources(q, c.key); ok {
				for _, m := range maps {
					for v, n := range m {
						if _, ok := c.counts[v]; ok {
							c.counts[v] += int64(n)
						}
					}
				}
				continue
			}
		}
		snap.CountMatching(q, func(ni *framework.NodeInfo, n int) {
			if excluded[i][ni.Name()] {
				return
			}
			c.counts[ni.Node().Labels[c.key]] += int64(n)
		})
	}
	for _, c := range cs {
		c.domainsCounted = len(c.counts)
		c.minMatch = math.MaxInt64
		for _, n := range c.counts {
			c.minMatch = min(c.minMatch, n)
		}
		if c.domainsCounted < c.minDomains || c.minMatch == math.MaxInt64 {
			c.minMatch = 0
		}
	}
}

const (
	filterKey framework.StateKey = Name + "/prefilter"
	scoreKey  framework.StateKey = Name + "/prescore"
)

type filterState struct{ constraints []*constraint }

func (s *filterState) Clone() framework.StateData { return s }

// PreFilter counts matching pods per domain for the hard constraints.
func (p *Plugin) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	cs, err := p.constraints(pod.Pod, v1.DoNotSchedule)
	if err != nil {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
	}
	if len(cs) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	count(p.h.Snapshot(), pod.Pod, cs)
	state.Write(filterKey, &filterState{constraints: cs})
	return nil, nil
}

// Filter rejects nodes that would break a maxSkew.
func (p *Plugin) Filter(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	s, err := framework.ReadState[*filterState](state, filterKey)
	if err != nil {
		return framework.AsStatus(err)
	}
	for _, c := range s.constraints {
		v, ok := node.Node().Labels[c.key]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonMissingLabel)
		}
		if c.counts[v]+c.selfMatch-c.minMatch > c.maxSkew {
			return framework.NewStatus(framework.Unschedulable, ReasonSkew)
		}
	}
	return nil
}

type scoreState struct {
	constraints []*constraint
	weights     []float64
	ignored     map[string]bool
}

func (s *scoreState) Clone() framework.StateData { return s }

// PreScore counts matching pods per domain for the soft constraints over
// all nodes and marks the feasible nodes lacking a topology key.
func (p *Plugin) PreScore(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, feasible []*framework.NodeInfo) *framework.Status {
	cs, err := p.constraints(pod.Pod, v1.ScheduleAnyway)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	count(p.h.Snapshot(), pod.Pod, cs)
	s := &scoreState{constraints: cs, ignored: map[string]bool{}}
	for _, c := range cs {
		// Constraints over many domains weigh more, so that a zone
		// constraint is not drowned by a hostname one.
		s.weights = append(s.weights, math.Log(float64(len(c.counts)+2)))
	}
	for _, ni := range feasible {
		if !hasKeys(ni.Node(), cs) {
			s.ignored[ni.Name()] = true
		}
	}
	state.Write(scoreKey, s)
	return nil
}

// Score is the weighted number of matching pods in the node's domains
// (lower is better; NormalizeScore reverses it).
func (p *Plugin) Score(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	s, err := framework.ReadState[*scoreState](state, scoreKey)
	if err != nil {
		return 0, framework.AsStatus(err)
	}
	if s.ignored[node.Name()] {
		return 0, nil
	}
	var v float64
	for i, c := range s.constraints {
		val, ok := node.Node().Labels[c.key]
		if !ok {
			continue // optional constraint; the others score the node
		}
		n := c.counts[val]
		v += float64(n+c.maxSkew-1) * s.weights[i]
	}
	return int64(math.Round(v)), nil
}

// NormalizeScore: the emptiest domain gets 100; nodes without the
// topology keys get 0.
func (p *Plugin) NormalizeScore(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, scores []framework.NodeScore) *framework.Status {
	s, err := framework.ReadState[*scoreState](state, scoreKey)
	if err != nil {
		return framework.AsStatus(err)
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, sc := range scores {
		if s.ignored[sc.Name] {
			continue
		}
		lo, hi = min(lo, sc.Score), max(hi, sc.Score)
	}
	for i := range scores {
		switch {
		case s.ignored[scores[i].Name]:
			scores[i].Score = 0
		case hi == 0:
			scores[i].Score = framework.MaxNodeScore
		default:
			scores[i].Score = framework.MaxNodeScore * (hi + lo - scores[i].Score) / hi
		}
	}
	return nil
}

// EventsToRegister: pods coming and going and node labels/taints.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.EventAssignedPod, Action: framework.All},
		{Resource: framework.EventNode, Action: framework.All},
	}
}

package placement

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// ErrNoCluster is returned (wrapped) when no cluster is feasible.
var ErrNoCluster = errors.New("no feasible cluster")

// Scheduler runs filter and score plugins over clusters.
type Scheduler struct {
	filters []FilterPlugin
	scorers []weightedScorer
}

type weightedScorer struct {
	ScorePlugin
	weight int64
}

// New builds a Scheduler from the named plugins, in order; nil or empty
// means DefaultPlugins with weight 1.
func New(cfg []PluginConfig) (*Scheduler, error) {
	if len(cfg) == 0 {
		for _, n := range DefaultPlugins {
			cfg = append(cfg, PluginConfig{Name: n, Weight: 1})
		}
	}
	s := &Scheduler{}
	seen := map[string]bool{}
	for _, pc := range cfg {
		if seen[pc.Name] {
			return nil, fmt.Errorf("placement plugin %q enabled twice", pc.Name)
		}
		seen[pc.Name] = true
		p, err := lookup(pc.Name)
		if err != nil {
			return nil, err
		}
		used := false
		if f, ok := p.(FilterPlugin); ok {
			s.filters = append(s.filters, f)
			used = true
		}
		if sp, ok := p.(ScorePlugin); ok {
			w := pc.Weight
			if w <= 0 {
				w = 1
			}
			s.scorers = append(s.scorers, weightedScorer{sp, w})
			used = true
		}
		if !used {
			return nil, fmt.Errorf("placement plugin %q implements no extension point", pc.Name)
		}
	}
	return s, nil
}

// Target is one selected cluster. Replicas is nil for objects without
// replicas.
type Target struct {
	Cluster  string
	Replicas *int32
}

// Decision explains one cluster.
type Decision struct {
	Cluster  string
	Selected bool
	Score    int64
	Replicas *int32
	// Reason says why the cluster was not selected (empty if selected).
	Reason string
}

// Result is a placement decision.
type Result struct {
	// Targets are the selected clusters, sorted by name.
	Targets []Target
	// AffinityName is the fallback group used ("" for a plain affinity).
	AffinityName string
	// Decisions has one entry per cluster, sorted by name.
	Decisions []Decision
	// Unplaced replicas could not be placed (every cluster at its max).
	Unplaced int32
}

// Schedule places req over clusters. It returns an error wrapping
// ErrNoCluster, together with a Result carrying the Decisions, when no
// cluster fits.
func (s *Scheduler) Schedule(ctx context.Context, req *Request, clusters []*ClusterInfo) (*Result, error) {
	sorted := append([]*ClusterInfo(nil), clusters...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	res := &Result{}
	decisions := map[string]*Decision{}
	for _, c := range sorted {
		decisions[c.Name] = &Decision{Cluster: c.Name}
	}
	defer func() {
		for _, c := range sorted {
			res.Decisions = append(res.Decisions, *decisions[c.Name])
		}
	}()

	terms := affinityTerms(req.Placement)
	var feasible []*ClusterInfo
	for ti, term := range terms {
		req.term = term.aff
		feasible = feasible[:0]
		for _, c := range sorted {
			d := decisions[c.Name]
			d.Reason = ""
			if st := s.filter(ctx, req, c); st != nil {
				d.Reason = st.String()
				if len(terms) > 1 {
					d.Reason = fmt.Sprintf("group %q: %s", term.name, d.Reason)
				}
				continue
			}
			feasible = append(feasible, c)
		}
		if len(feasible) > 0 {
			res.AffinityName = term.name
			break
		}
		if ti == len(terms)-1 {
			req.term = nil
			return res, fmt.Errorf("%w: %d clusters, all filtered out", ErrNoCluster, len(sorted))
		}
	}
	req.term = nil

	scores := s.score(ctx, req, feasible)
	for _, c := range feasible {
		decisions[c.Name].Score = scores[c.Name]
	}
	selected, err := spread(req.Placement.SpreadConstraints, feasible, scores, decisions)
	if err != nil {
		return res, err
	}

	var counts []int32
	if req.HasReplicas {
		counts, res.Unplaced = divide(req, selected)
	}
	for i, c := range selected {
		d := decisions[c.Name]
		d.Selected = true
		t := Target{Cluster: c.Name}
		if counts != nil {
			n := counts[i]
			t.Replicas = &n
			d.Replicas = &n
		}
		res.Targets = append(res.Targets, t)
	}
	return res, nil
}

func (s *Scheduler) filter(ctx context.Context, req *Request, c *ClusterInfo) *Status {
	for _, f := range s.filters {
		if st := f.Filter(ctx, req, c); st != nil {
			st.Plugin = f.Name()
			return st
		}
	}
	return nil
}

// score returns the weighted sum of each scorer's scores normalised to
// 0..100 by its highest raw score.
func (s *Scheduler) score(ctx context.Context, req *Request, feasible []*ClusterInfo) map[string]int64 {
	total := make(map[string]int64, len(feasible))
	raw := make([]int64, len(feasible))
	for _, sc := range s.scorers {
		var hi int64
		for i, c := range feasible {
			raw[i] = max(sc.Score(ctx, req, c), 0)
			hi = max(hi, raw[i])
		}
		if hi == 0 {
			continue
		}
		for i, c := range feasible {
			total[c.Name] += sc.weight * (raw[i] * 100 / hi)
		}
	}
	return total
}

type term struct {
	name string
	aff  *v1alpha1.ClusterAffinity
}

func affinityTerms(p v1alpha1.Placement) []term {
	if len(p.ClusterAffinities) > 0 {
		out := make([]term, len(p.ClusterAffinities))
		for i := range p.ClusterAffinities {
			out[i] = term{p.ClusterAffinities[i].AffinityName, &p.ClusterAffinities[i].ClusterAffinity}
		}
		return out
	}
	return []term{{"", p.ClusterAffinity}}
}

// groupOf returns c's value for field ("" if it has none).
func groupOf(field v1alpha1.SpreadField, c *ClusterInfo) string {
	switch field {
	case v1alpha1.SpreadByRegion:
		return c.Region
	case v1alpha1.SpreadByZone:
		return c.Zone
	default:
		return c.Name
	}
}

// spread applies each constraint in turn: clusters without a value for
// the field drop out, fewer than MinGroups groups is an error, and only
// the best MaxGroups groups (by best cluster score, then name) are kept.
func spread(constraints []v1alpha1.SpreadConstraint, feasible []*ClusterInfo, scores map[string]int64, decisions map[string]*Decision) ([]*ClusterInfo, error) {
	cur := feasible
	for _, sc := range constraints {
		field := sc.SpreadByField
		if field == "" {
			field = v1alpha1.SpreadByCluster
		}
		best := map[string]int64{}
		var groups []string
		var kept []*ClusterInfo
		for _, c := range cur {
			g := groupOf(field, c)
			if g == "" {
				decisions[c.Name].Reason = fmt.Sprintf("spread: cluster has no %s", field)
				continue
			}
			if _, ok := best[g]; !ok {
				groups = append(groups, g)
				best[g] = scores[c.Name]
			}
			best[g] = max(best[g], scores[c.Name])
			kept = append(kept, c)
		}
		if int32(len(groups)) < sc.MinGroups {
			return nil, fmt.Errorf("%w: spread by %s needs %d groups, only %d feasible", ErrNoCluster, field, sc.MinGroups, len(groups))
		}
		sort.Slice(groups, func(i, j int) bool {
			if best[groups[i]] != best[groups[j]] {
				return best[groups[i]] > best[groups[j]]
			}
			return groups[i] < groups[j]
		})
		if sc.MaxGroups > 0 && int(sc.MaxGroups) < len(groups) {
			keep := map[string]bool{}
			for _, g := range groups[:sc.MaxGroups] {
				keep[g] = true
			}
			var next []*ClusterInfo
			for _, c := range kept {
				if keep[groupOf(field, c)] {
					next = append(next, c)
				} else {
					decisions[c.Name].Reason = fmt.Sprintf("spread: %s %q not among the best %d", field, groupOf(field, c), sc.MaxGroups)
				}
			}
			kept = next
		}
		cur = kept
	}
	if len(cur) == 0 {
		return nil, fmt.Errorf("%w: spread constraints left no cluster", ErrNoCluster)
	}
	return cur, nil
}

// divide shares req.Replicas over selected (sorted by name).
func divide(req *Request, selected []*ClusterInfo) ([]int32, int32) {
	rs := req.Placement.ReplicaScheduling
	counts := make([]int32, len(selected))
	if rs == nil || rs.Type == "" || rs.Type == v1alpha1.Duplicated {
		for i := range counts {
			counts[i] = req.Replicas
		}
		return counts, 0
	}
	limits := map[string]v1alpha1.ReplicaLimit{}
	for _, l := range rs.Limits {
		limits[l.Cluster] = l
	}
	shares := make([]Share, len(selected))
	for i, c := range selected {
		l := limits[c.Name]
		shares[i] = Share{Cluster: c.Name, Min: l.Min, Max: l.Max, Weight: weightOf(req, rs, c)}
	}
	return Divide(req.Replicas, shares)
}

func weightOf(req *Request, rs *v1alpha1.ReplicaScheduling, c *ClusterInfo) int64 {
	if rs.Preference == v1alpha1.DivideByCapacity {
		fit := FitReplicas(req, c)
		if fit < 0 {
			return 0
		}
		return fit
	}
	if len(rs.StaticWeights) == 0 {
		return 1
	}
	for i := range rs.StaticWeights {
		if ok, _ := MatchAffinity(&rs.StaticWeights[i].TargetCluster, c); ok {
			return max(rs.StaticWeights[i].Weight, 0)
		}
	}
	return 0
}

package placement

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// Every built-in plugin registers here, in one place.
func init() {
	Register("clusteraffinity", "filter: cluster names, exclusions and label selector of the affinity term", func() Plugin { return clusterAffinity{} })
	Register("tainttoleration", "filter: cluster taints (NoSchedule, NoExecute) must be tolerated", func() Plugin { return taintToleration{} })
	Register("clusterhealth", "filter: cluster must be Ready unless failover keeps it; evicted clusters are out", func() Plugin { return clusterHealth{} })
	Register("capacity", "score: more available capacity for the workload scores higher", func() Plugin { return capacity{} })
	Register("stickiness", "score: clusters that already hold the object score higher (fewer moves)", func() Plugin { return stickiness{} })
}

// MatchAffinity reports whether c satisfies aff (nil matches every
// cluster), and if not, why.
func MatchAffinity(aff *v1alpha1.ClusterAffinity, c *ClusterInfo) (bool, string) {
	if aff == nil {
		return true, ""
	}
	if slices.Contains(aff.ExcludeClusters, c.Name) {
		return false, "excluded by name"
	}
	if len(aff.ClusterNames) > 0 && !slices.Contains(aff.ClusterNames, c.Name) {
		return false, fmt.Sprintf("not in clusterNames %v", aff.ClusterNames)
	}
	if aff.LabelSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(aff.LabelSelector)
		if err != nil {
			return false, fmt.Sprintf("invalid label selector: %v", err)
		}
		if !sel.Matches(labels.Set(ClusterLabels(c))) {
			return false, fmt.Sprintf("labels do not match %s", sel)
		}
	}
	return true, ""
}

// ClusterLabels returns c's labels plus the well-known topology labels
// from its region, zone and provider.
func ClusterLabels(c *ClusterInfo) map[string]string {
	out := make(map[string]string, len(c.Labels)+3)
	for k, v := range c.Labels {
		out[k] = v
	}
	if c.Region != "" {
		out[v1alpha1.LabelRegion] = c.Region
	}
	if c.Zone != "" {
		out[v1alpha1.LabelZone] = c.Zone
	}
	if c.Provider != "" {
		out[v1alpha1.LabelProvider] = c.Provider
	}
	return out
}

type clusterAffinity struct{}

func (clusterAffinity) Name() string { return "clusteraffinity" }

func (clusterAffinity) Filter(_ context.Context, req *Request, c *ClusterInfo) *Status {
	if ok, why := MatchAffinity(req.Affinity(), c); !ok {
		return Unschedulable("%s", why)
	}
	return nil
}

type taintToleration struct{}

func (taintToleration) Name() string { return "tainttoleration" }

func (taintToleration) Filter(_ context.Context, req *Request, c *ClusterInfo) *Status {
	for i := range c.Taints {
		t := &c.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		// A NoSchedule taint does not evict what is already there.
		if t.Effect == corev1.TaintEffectNoSchedule && req.Previous[c.Name] {
			continue
		}
		tolerated := false
		for j := range req.Placement.ClusterTolerations {
			if tolerates(&req.Placement.ClusterTolerations[j], t) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return Unschedulable("taint %s=%s:%s not tolerated", t.Key, t.Value, t.Effect)
		}
	}
	return nil
}

type clusterHealth struct{}

func (clusterHealth) Name() string { return "clusterhealth" }

func (clusterHealth) Filter(_ context.Context, req *Request, c *ClusterInfo) *Status {
	if req.Evicted[c.Name] {
		return Unschedulable("evicted by failover")
	}
	if !c.Ready && !req.KeepUnready[c.Name] {
		return Unschedulable("cluster not ready")
	}
	return nil
}

// FitReplicas is how many replicas of req fit c's available capacity
// plus what the object itself already uses there (req.Holding); -1 when
// the capacity is unknown.
func FitReplicas(req *Request, c *ClusterInfo) int64 {
	if !c.HasCapacity {
		return -1
	}
	held := int64(req.Holding[c.Name])
	fit := c.AvailablePods + held
	if req.ReplicaMilliCPU > 0 {
		fit = min(fit, (c.AvailableMilliCPU+held*req.ReplicaMilliCPU)/req.ReplicaMilliCPU)
	}
	if req.ReplicaMemory > 0 {
		fit = min(fit, (c.AvailableMemory+held*req.ReplicaMemory)/req.ReplicaMemory)
	}
	return max(fit, 0)
}

type capacity struct{}

func (capacity) Name() string { return "capacity" }

func (capacity) Score(_ context.Context, req *Request, c *ClusterInfo) int64 {
	return max(FitReplicas(req, c), 0)
}

type stickiness struct{}

func (stickiness) Name() string { return "stickiness" }

func (stickiness) Score(_ context.Context, req *Request, c *ClusterInfo) int64 {
	if req.Previous[c.Name] {
		return 1
	}
	return 0
}

// tolerates is the core/v1 toleration rule: empty effect matches every
// effect, operator Exists matches any value (and with an empty key, every
// taint), Equal (the default) needs key and value equal.
func tolerates(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return tol.Key == t.Key && tol.Value == t.Value
	default:
		return false
	}
}

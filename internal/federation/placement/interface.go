package placement

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/plugin"
)

// ClusterInfo is what placement knows about one member cluster; the
// controller builds it from the Cluster object.
type ClusterInfo struct {
	Name     string
	Labels   map[string]string
	Region   string
	Zone     string
	Provider string
	Taints   []corev1.Taint
	// Ready is the Cluster's Ready condition.
	Ready bool
	// HasCapacity says whether the Available* fields were reported.
	HasCapacity bool
	// AvailableMilliCPU, AvailableMemory (bytes) and AvailablePods are
	// allocatable minus requests over the member's ready nodes.
	AvailableMilliCPU int64
	AvailableMemory   int64
	AvailablePods     int64
}

// Request is one object to place.
type Request struct {
	Placement v1alpha1.Placement
	// HasReplicas is set for workloads with spec.replicas.
	HasReplicas bool
	Replicas    int32
	// Per-replica requests of the workload's pod template, for capacity
	// division.
	ReplicaMilliCPU int64
	ReplicaMemory   int64
	// Previous are the clusters that hold the object now.
	Previous map[string]bool
	// KeepUnready are clusters kept although not Ready: failover is off,
	// or the toleration has not passed, or the fleet brake is on.
	KeepUnready map[string]bool
	// Evicted are clusters failover moved the object away from.
	Evicted map[string]bool
	// Holding is how many replicas of this object each cluster runs now.
	// Capacity division and scoring add them back to the cluster's
	// available capacity, which already has them subtracted: without that
	// a workload would look like it no longer fits where it runs, and its
	// replicas would drift away on every reconcile.
	Holding map[string]int32

	// term is the affinity term being evaluated.
	term *v1alpha1.ClusterAffinity
}

// Affinity returns the cluster affinity term being evaluated (nil: any
// cluster).
func (r *Request) Affinity() *v1alpha1.ClusterAffinity { return r.term }

// Status is a plugin's verdict; nil means success.
type Status struct {
	Plugin string
	Reason string
}

// Unschedulable returns a status rejecting a cluster for reason.
func Unschedulable(format string, args ...any) *Status {
	return &Status{Reason: fmt.Sprintf(format, args...)}
}

func (s *Status) String() string {
	if s == nil {
		return "ok"
	}
	if s.Plugin == "" {
		return s.Reason
	}
	return s.Plugin + ": " + s.Reason
}

// Plugin is the base of every extension point.
type Plugin interface {
	Name() string
}

// FilterPlugin says whether a cluster may receive the object.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, req *Request, c *ClusterInfo) *Status
}

// ScorePlugin ranks a feasible cluster; any non-negative scale, the
// scheduler normalises each plugin's scores to 0..100 by the highest.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, req *Request, c *ClusterInfo) int64
}

// Factory builds a plugin.
type Factory func() Plugin

// Prefix of every placement plugin's registry name.
const Prefix = "federation.placement."

// Register registers a placement plugin as "federation.placement.<name>".
func Register(name, summary string, f Factory) {
	plugin.Register(plugin.Info{Name: Prefix + name, Summary: summary, Factory: f})
}

// DefaultPlugins is the plugin order used when a config names none.
var DefaultPlugins = []string{"clusteraffinity", "tainttoleration", "clusterhealth", "capacity", "stickiness"}

// PluginConfig enables one plugin; Weight multiplies its normalised score
// (default 1).
type PluginConfig struct {
	Name   string
	Weight int64
}

// lookup builds the plugin registered under name.
func lookup(name string) (Plugin, error) {
	info, ok := plugin.Lookup(Prefix + name)
	if !ok {
		return nil, fmt.Errorf("unknown placement plugin %q (known: %s)", name, strings.Join(plugin.Names(Prefix), ", "))
	}
	f, ok := info.Factory.(Factory)
	if !ok {
		return nil, fmt.Errorf("placement plugin %q has factory %T, want placement.Factory", name, info.Factory)
	}
	return f(), nil
}

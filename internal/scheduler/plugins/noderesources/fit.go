package noderesources

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// FitName is the fit plugin's name.
const FitName = "noderesourcesfit"

func init() {
	framework.Register(framework.KindFilter, FitName, "resource requests fit (incl. init/sidecar, overhead, extended); LeastAllocated/MostAllocated score", NewFit)
}

// Scoring strategies.
const (
	LeastAllocated = "LeastAllocated"
	MostAllocated  = "MostAllocated"
)

// ResourceSpec weights one resource in a score.
type ResourceSpec struct {
	Name   string `json:"name"`
	Weight int64  `json:"weight"`
}

// ScoringStrategy picks how fit scores nodes.
type ScoringStrategy struct {
	// Type is LeastAllocated (default) or MostAllocated.
	Type string `json:"type,omitempty"`
	// Resources default to cpu and memory, weight 1 each.
	Resources []ResourceSpec `json:"resources,omitempty"`
}

// FitArgs configure noderesourcesfit.
type FitArgs struct {
	// IgnoredResources are not checked (e.g. resources a device plugin
	// manages outside the scheduler).
	IgnoredResources []string `json:"ignoredResources,omitempty"`
	// IgnoredResourceGroups ignores every resource "<group>/<name>".
	IgnoredResourceGroups []string         `json:"ignoredResourceGroups,omitempty"`
	ScoringStrategy       *ScoringStrategy `json:"scoringStrategy,omitempty"`
}

var defaultResources = []ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}}

// Fit implements Filter and Score.
type Fit struct {
	ignored       map[v1.ResourceName]bool
	ignoredGroups map[string]bool
	most          bool
	resources     []ResourceSpec
}

// NewFit is the factory.
func NewFit(raw json.RawMessage, _ framework.Handle) (framework.Plugin, error) {
	var args FitArgs
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	f := &Fit{ignored: map[v1.ResourceName]bool{}, ignoredGroups: map[string]bool{}, resources: defaultResources}
	for _, r := range args.IgnoredResources {
		f.ignored[v1.ResourceName(r)] = true
	}
	for _, g := range args.IgnoredResourceGroups {
		if strings.Contains(g, "/") {
			return nil, fmt.Errorf("ignoredResourceGroups: %q must not contain '/'", g)
		}
		f.ignoredGroups[g] = true
	}
	if s := args.ScoringStrategy; s != nil {
		switch s.Type {
		case "", LeastAllocated:
		case MostAllocated:
			f.most = true
		default:
			return nil, fmt.Errorf("scoringStrategy.type %q is not %s or %s", s.Type, LeastAllocated, MostAllocated)
		}
		if len(s.Resources) > 0 {
			if err := validateResources(s.Resources); err != nil {
				return nil, fmt.Errorf("scoringStrategy.resources: %w", err)
			}
			f.resources = s.Resources
		}
	}
	return f, nil
}

func validateResources(rs []ResourceSpec) error {
	for _, r := range rs {
		if r.Name == "" {
			return fmt.Errorf("resource without a name")
		}
		if r.Weight < 1 || r.Weight > 100 {
			return fmt.Errorf("%s: weight %d is outside 1..100", r.Name, r.Weight)
		}
	}
	return nil
}

// NodeLocal implements framework.NodeLocalPlugin: the verdict and score
// depend on the pod and the node only.
func (*Fit) NodeLocal() {}

// Name implements framework.Plugin.
func (*Fit) Name() string { return FitName }

// Insufficient describes one resource that does not fit.
type Insufficient struct {
	Resource  v1.ResourceName
	Requested int64
	Used      int64
	Capacity  int64
}

// Reason is the message shown to users, e.g. "Insufficient cpu".
func (i Insufficient) Reason() string {
	if i.Resource == v1.ResourcePods {
		return "Too many pods"
	}
	return "Insufficient " + string(i.Resource)
}

// Unresolvable reports whether the request exceeds the node's whole
// capacity, so that no eviction could help.
func (i Insufficient) Unresolvable() bool { return i.Requested > i.Capacity }

// Fits checks pod against a node with allocatable alloc that already has
// podCount pods using used; ignore (may be nil) skips resources. It
// returns every resource that does not fit.
func Fits(pod *framework.PodInfo, alloc, used *framework.Resource, podCount int, ignore func(v1.ResourceName) bool) []Insufficient {
	var out []Insufficient
	if int64(podCount)+1 > alloc.AllowedPodNumber {
		out = append(out, Insufficient{Resource: v1.ResourcePods, Requested: 1, Used: int64(podCount), Capacity: alloc.AllowedPodNumber})
	}
	r := &pod.Requests
	check := func(name v1.ResourceName, want, have, capacity int64) {
		if want > 0 && want > capacity-have {
			out = append(out, Insufficient{Resource: name, Requested: want, Used: have, Capacity: capacity})
		}
	}
	check(v1.ResourceCPU, r.MilliCPU, used.MilliCPU, alloc.MilliCPU)
	check(v1.ResourceMemory, r.Memory, used.Memory, alloc.Memory)
	check(v1.ResourceEphemeralStorage, r.EphemeralStorage, used.EphemeralStorage, alloc.EphemeralStorage)
	for name, want := range r.Scalar {
		if ignore != nil && ignore(name) {
			continue
		}
		check(name, want, used.Scalar[name], alloc.Scalar[name])
	}
	return out
}

func (f *Fit) ignore(name v1.ResourceName) bool {
	if f.ignored[name] {
		return true
	}
	if i := strings.IndexByte(string(name), '/'); i > 0 {
		return f.ignoredGroups[string(name)[:i]]
	}
	return false
}

// Filter rejects nodes without room.
func (f *Fit) Filter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	bad := Fits(pod, &node.Allocatable, &node.Requested, len(node.Pods), f.ignore)
	if len(bad) == 0 {
		return nil
	}
	code := framework.UnschedulableAndUnresolvable
	reasons := make([]string, len(bad))
	for i, b := range bad {
		reasons[i] = b.Reason()
		if !b.Unresolvable() || b.Resource == v1.ResourcePods {
			code = framework.Unschedulable
		}
	}
	return framework.NewStatus(code, reasons...)
}

// requestedAfter is what the node would have in use of resource name with
// pod on it; CPU and memory use the non-zero defaults, as for scoring.
func requestedAfter(name v1.ResourceName, pod *framework.PodInfo, node *framework.NodeInfo, nonZero bool) (req, alloc int64, podWants int64) {
	alloc = node.Allocatable.Get(name)
	switch {
	case nonZero && name == v1.ResourceCPU:
		return node.NonZeroRequested.MilliCPU + pod.NonZeroCPU, alloc, pod.NonZeroCPU
	case nonZero && name == v1.ResourceMemory:
		return node.NonZeroRequested.Memory + pod.NonZeroMemory, alloc, pod.NonZeroMemory
	}
	podWants = pod.Requests.Get(name)
	return node.Requested.Get(name) + podWants, alloc, podWants
}

// Score is the weighted average, over the configured resources the node
// has (extended resources only when the pod asks for them), of the free
// (LeastAllocated) or used (MostAllocated) share after placing the pod.
func (f *Fit) Score(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) (int64, *framework.Status) {
	var sum, weights int64
	for _, r := range f.resources {
		name := v1.ResourceName(r.Name)
		req, alloc, wants := requestedAfter(name, pod, node, true)
		if alloc == 0 || (wants == 0 && isExtended(name)) {
			continue
		}
		var s int64
		if f.most {
			s = min(req, alloc) * framework.MaxNodeScore / alloc
		} else if req <= alloc {
			s = (alloc - req) * framework.MaxNodeScore / alloc
		}
		sum += s * r.Weight
		weights += r.Weight
	}
	if weights == 0 {
		return 0, nil
	}
	return sum / weights, nil
}

func isExtended(name v1.ResourceName) bool {
	switch name {
	case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage, v1.ResourcePods:
		return false
	}
	return true
}

// EventsToRegister: room appears when pods leave or nodes grow.
func (*Fit) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.EventAssignedPod, Action: framework.Delete | framework.Update},
		{Resource: framework.EventNode, Action: framework.Add | framework.Update},
	}
}

package framework

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Default requests used for scoring pods that set none, so that many
// request-less pods do not all land on one node (the same defaults as
// kube-scheduler: 100 millicores and 200 MiB).
const (
	DefaultMilliCPURequest int64 = 100
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024
)

var nonZeroDefaults = v1.ResourceList{
	v1.ResourceCPU:    *resource.NewMilliQuantity(DefaultMilliCPURequest, resource.DecimalSI),
	v1.ResourceMemory: *resource.NewQuantity(DefaultMemoryRequest, resource.BinarySI),
}

// Resource is an amount of every resource a node offers, in integers:
// millicores for CPU and bytes for memory and ephemeral storage.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// AllowedPodNumber is the node's pod capacity; requests leave it 0.
	AllowedPodNumber int64
	// Scalar holds extended resources, hugepages and attachable volumes.
	Scalar map[v1.ResourceName]int64
}

// NewResource converts a ResourceList.
func NewResource(rl v1.ResourceList) Resource {
	var r Resource
	r.Add(rl)
	return r
}

// Add adds every quantity in rl.
func (r *Resource) Add(rl v1.ResourceList) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case v1.ResourceMemory:
			r.Memory += q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case v1.ResourcePods:
			r.AllowedPodNumber += q.Value()
		default:
			if isScalar(name) {
				r.AddScalar(name, q.Value())
			}
		}
	}
}

// isScalar reports whether name is a resource the scheduler accounts as a
// plain integer: extended resources, hugepages and attachable volumes.
func isScalar(name v1.ResourceName) bool {
	s := string(name)
	return len(s) > 0 && (hasPrefix(s, v1.ResourceHugePagesPrefix) || hasPrefix(s, v1.ResourceAttachableVolumesPrefix) || isExtended(s))
}

// isExtended: a fully qualified name outside the kubernetes.io namespace.
func isExtended(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			dom := s[:i]
			return dom != "kubernetes.io" && !hasSuffix(dom, ".kubernetes.io") && !hasPrefix(s, "requests.")
		}
	}
	return false
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
func hasSuffix(s, p string) bool { return len(s) >= len(p) && s[len(s)-len(p):] == p }

// AddScalar adds n of a scalar resource.
func (r *Resource) AddScalar(name v1.ResourceName, n int64) {
	if r.Scalar == nil {
		r.Scalar = map[v1.ResourceName]int64{}
	}
	r.Scalar[name] += n
}

// AddResource adds o to r.
func (r *Resource) AddResource(o *Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	r.AllowedPodNumber += o.AllowedPodNumber
	for k, v := range o.Scalar {
		r.AddScalar(k, v)
	}
}

// SubResource subtracts o from r.
func (r *Resource) SubResource(o *Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	r.AllowedPodNumber -= o.AllowedPodNumber
	for k, v := range o.Scalar {
		r.AddScalar(k, -v)
	}
}

// Clone returns a deep copy.
func (r Resource) Clone() Resource {
	if r.Scalar != nil {
		s := make(map[v1.ResourceName]int64, len(r.Scalar))
		for k, v := range r.Scalar {
			s[k] = v
		}
		r.Scalar = s
	}
	return r
}

// Get returns the amount of one resource.
func (r *Resource) Get(name v1.ResourceName) int64 {
	switch name {
	case v1.ResourceCPU:
		return r.MilliCPU
	case v1.ResourceMemory:
		return r.Memory
	case v1.ResourceEphemeralStorage:
		return r.EphemeralStorage
	case v1.ResourcePods:
		return r.AllowedPodNumber
	}
	return r.Scalar[name]
}

// HostPort is one host port a pod binds.
type HostPort struct {
	Protocol v1.Protocol
	IP       string
	Port     int32
}

// String is "TCP/0.0.0.0/80".
func (p HostPort) String() string { return fmt.Sprintf("%s/%s/%d", p.Protocol, p.IP, p.Port) }

// Conflicts reports whether two host ports cannot be bound on one node:
// same protocol and port, and the same IP or either one the wildcard.
func (p HostPort) Conflicts(o HostPort) bool {
	return p.Port == o.Port && p.Protocol == o.Protocol && (p.IP == o.IP || p.IP == "0.0.0.0" || o.IP == "0.0.0.0")
}

// PodHostPorts lists the host ports of a pod's containers and sidecar
// (restartable init) containers, with defaults filled in.
func PodHostPorts(pod *v1.Pod) []HostPort {
	var out []HostPort
	add := func(cs []v1.Container, sidecarsOnly bool) {
		for i := range cs {
			if sidecarsOnly && (cs[i].RestartPolicy == nil || *cs[i].RestartPolicy != v1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := HostPort{Protocol: p.Protocol, IP: p.HostIP, Port: p.HostPort}
				if hp.Protocol == "" {
					hp.Protocol = v1.ProtocolTCP
				}
				if hp.IP == "" {
					hp.IP = "0.0.0.0"
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.InitContainers, true)
	add(pod.Spec.Containers, false)
	return out
}

// AffinityTerm is a parsed PodAffinityTerm: which pods it selects, and the
// topology key grouping nodes into domains.
type AffinityTerm struct {
	// Namespaces lists namespaces by name; empty with a nil
	// NamespaceSelector means the owning pod's own namespace (already
	// filled in here).
	Namespaces        map[string]struct{}
	Selector          labels.Selector
	NamespaceSelector labels.Selector
	// HasNamespaceSelector is true when the term set a namespaceSelector
	// (an empty one selects every namespace).
	HasNamespaceSelector bool
	TopologyKey          string
	// Key identifies the term's meaning (selector, namespaces, namespace
	// selector, topology key): terms with equal keys select the same pods
	// in the same domains, so indexes aggregate them.
	Key string
}

// WeightedAffinityTerm is a preferred term.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// Matches reports whether pod is selected by the term. nsLabels are the
// labels of pod's namespace (nil when unknown).
func (t *AffinityTerm) Matches(pod *v1.Pod, nsLabels labels.Set) bool {
	if _, ok := t.Namespaces[pod.Namespace]; !ok && !t.NamespaceSelector.Matches(nsLabels) {
		return false
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}

func newAffinityTerm(pod *v1.Pod, t *v1.PodAffinityTerm) (AffinityTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("label selector: %w", err)
	}
	nsSel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("namespace selector: %w", err)
	}
	ns := make(map[string]struct{}, len(t.Namespaces)+1)
	for _, n := range t.Namespaces {
		ns[n] = struct{}{}
	}
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		ns[pod.Namespace] = struct{}{}
	}
	names := make([]string, 0, len(ns))
	for n := range ns {
		names = append(names, n)
	}
	sort.Strings(names)
	key := t.TopologyKey + "|" + sel.String() + "|" + strings.Join(names, ",")
	if t.NamespaceSelector != nil {
		key += "|ns:" + nsSel.String()
	}
	return AffinityTerm{Namespaces: ns, Selector: sel, NamespaceSelector: nsSel, HasNamespaceSelector: t.NamespaceSelector != nil, TopologyKey: t.TopologyKey, Key: key}, nil
}

// PodInfo is a pod with what the scheduler derives from it, computed once.
type PodInfo struct {
	Pod *v1.Pod
	// Requests follows the kubelet's admission rule: the sum over
	// containers, sidecars counted for the whole life of the pod, the
	// maximum over the init phase, pod-level requests where set, plus
	// overhead.
	Requests Resource
	// NonZeroCPU and NonZeroMemory are Requests with defaults for
	// containers that set none, used for scoring.
	NonZeroCPU, NonZeroMemory int64

	HostPorts []HostPort

	RequiredAffinityTerms      []AffinityTerm
	RequiredAntiAffinityTerms  []AffinityTerm
	PreferredAffinityTerms     []WeightedAffinityTerm
	PreferredAntiAffinityTerms []WeightedAffinityTerm
	// ParseError is set when an affinity term has an invalid selector;
	// such a pod cannot be scheduled.
	ParseError error
}

// NewPodInfo derives a PodInfo. It never fails: a bad selector is kept in
// ParseError and its term matches nothing.
func NewPodInfo(pod *v1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Update(pod)
	return pi
}

// Update recomputes everything from pod.
func (pi *PodInfo) Update(pod *v1.Pod) {
	*pi = PodInfo{Pod: pod}
	pi.Requests = NewResource(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	nz := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{NonMissingContainerRequests: nonZeroDefaults})
	pi.NonZeroCPU = nz.Cpu().MilliValue()
	pi.NonZeroMemory = nz.Memory().Value()
	pi.HostPorts = PodHostPorts(pod)
	aff := pod.Spec.Affinity
	if aff == nil {
		return
	}
	required := func(ts []v1.PodAffinityTerm) []AffinityTerm {
		var out []AffinityTerm
		for i := range ts {
			t, err := newAffinityTerm(pod, &ts[i])
			if err != nil {
				pi.ParseError = err
				continue
			}
			out = append(out, t)
		}
		return out
	}
	preferred := func(ts []v1.WeightedPodAffinityTerm) []WeightedAffinityTerm {
		var out []WeightedAffinityTerm
		for i := range ts {
			t, err := newAffinityTerm(pod, &ts[i].PodAffinityTerm)
			if err != nil {
				pi.ParseError = err
				continue
			}
			out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: ts[i].Weight})
		}
		return out
	}
	if a := aff.PodAffinity; a != nil {
		pi.RequiredAffinityTerms = required(a.RequiredDuringSchedulingIgnoredDuringExecution)
		pi.PreferredAffinityTerms = preferred(a.PreferredDuringSchedulingIgnoredDuringExecution)
	}
	if a := aff.PodAntiAffinity; a != nil {
		pi.RequiredAntiAffinityTerms = required(a.RequiredDuringSchedulingIgnoredDuringExecution)
		pi.PreferredAntiAffinityTerms = preferred(a.PreferredDuringSchedulingIgnoredDuringExecution)
	}
}

// UID is the pod's UID.
func (pi *PodInfo) UID() types.UID { return pi.Pod.UID }

// HasAffinity reports whether the pod has any pod (anti-)affinity term.
func (pi *PodInfo) HasAffinity() bool {
	return len(pi.RequiredAffinityTerms)+len(pi.RequiredAntiAffinityTerms)+len(pi.PreferredAffinityTerms)+len(pi.PreferredAntiAffinityTerms) > 0
}

// QueuedPodInfo is a pod waiting in the scheduling queue.
type QueuedPodInfo struct {
	*PodInfo
	// Timestamp is when the pod was last added to the queue.
	Timestamp time.Time
	// InitialAttemptTimestamp is when the pod was first popped.
	InitialAttemptTimestamp time.Time
	// Attempts counts scheduling attempts.
	Attempts int
	// UnschedulablePlugins are the plugins that rejected the pod in its
	// last attempt; only cluster events those plugins care about requeue it.
	UnschedulablePlugins map[string]struct{}
	// Gated is true while a PreEnqueue plugin keeps the pod out.
	Gated bool
}

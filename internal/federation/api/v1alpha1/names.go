package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of the federation API.
const (
	Group   = "federation.keelson.dev"
	Version = "v1alpha1"
)

// GroupVersion is Group/Version.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Resources of the federation API.
var (
	ClustersGVR                 = GroupVersion.WithResource("clusters")
	PropagationPoliciesGVR      = GroupVersion.WithResource("propagationpolicies")
	ClusterPropagationPolicyGVR = GroupVersion.WithResource("clusterpropagationpolicies")
	OverridePoliciesGVR         = GroupVersion.WithResource("overridepolicies")
	ClusterOverridePoliciesGVR  = GroupVersion.WithResource("clusteroverridepolicies")
)

// Namespace on the host holding member kubeconfig Secrets.
const Namespace = "keelson-federation"

// FieldManager is the server-side apply field manager on members.
const FieldManager = "keelson-federation"

// Finalizer on host objects that are propagated: members are cleaned up
// before the host object goes.
const Finalizer = "federation.keelson.dev/cleanup"

// Labels and annotations the controllers write.
const (
	// LabelManaged=true marks member objects keelson created or adopted.
	LabelManaged = "federation.keelson.dev/managed"
	// AnnotationHash on a member object is the hash of the manifest last
	// applied from the host.
	AnnotationHash = "federation.keelson.dev/hash"
	// AnnotationPolicy on a host object names the policy that placed it
	// ("Namespace/Name" or "cluster/Name").
	AnnotationPolicy = "federation.keelson.dev/policy"
	// AnnotationClusters on a host object is the per-cluster breakdown
	// (JSON list of ClusterBreakdown).
	AnnotationClusters = "federation.keelson.dev/clusters"
	// LabelRegion etc. are the well-known topology labels a Cluster also
	// carries.
	LabelRegion   = "topology.kubernetes.io/region"
	LabelZone     = "topology.kubernetes.io/zone"
	LabelProvider = "federation.keelson.dev/provider"
)

// ClusterBreakdown is one member's share of a host object, stored as JSON
// in AnnotationClusters.
type ClusterBreakdown struct {
	Cluster           string `json:"cluster"`
	Replicas          *int32 `json:"replicas,omitempty"`
	ReadyReplicas     int32  `json:"readyReplicas,omitempty"`
	AvailableReplicas int32  `json:"availableReplicas,omitempty"`
	UpdatedReplicas   int32  `json:"updatedReplicas,omitempty"`
	Applied           bool   `json:"applied"`
	// Hash of the rendering applied there (the member copy's
	// federation.keelson.dev/hash). After a restart it tells, before the
	// member caches have loaded, which objects changed since.
	Hash string `json:"hash,omitempty"`
	// Evicted: replicas left this cluster by failover.
	Evicted bool `json:"evicted,omitempty"`
	// Failover says what failover does about this cluster while it is not
	// ready: tolerating it, or held by the fleet brake.
	Failover string `json:"failover,omitempty"`
	// ReplicasFrom is "hpa/NAME" when a HorizontalPodAutoscaler in the
	// member controls the replicas (keelson leaves them as they are).
	ReplicasFrom string `json:"replicasFrom,omitempty"`
	Error        string `json:"error,omitempty"`
}

// FromUnstructured converts the content of an unstructured object into
// out (a pointer to one of this package's types).
func FromUnstructured(obj map[string]any, out any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, out); err != nil {
		return fmt.Errorf("decoding %T: %w", out, err)
	}
	return nil
}

// ToUnstructured converts one of this package's types into a map.
func ToUnstructured(in any) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(in)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", in, err)
	}
	return m, nil
}

// DeepCopy returns a deep copy of s.
func (s *ClusterStatus) DeepCopy() *ClusterStatus {
	out := *s
	out.Conditions = append([]metav1.Condition(nil), s.Conditions...)
	if s.Capacity != nil {
		c := *s.Capacity
		c.Allocatable = s.Capacity.Allocatable.DeepCopy()
		c.Available = s.Capacity.Available.DeepCopy()
		out.Capacity = &c
	}
	return &out
}

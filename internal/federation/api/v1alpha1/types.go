package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Cluster is a member cluster joined to the host (cluster-scoped).
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterSpec   `json:"spec"`
	Status            ClusterStatus `json:"status,omitempty"`
}

// ClusterSpec says how to reach a member and how placement sees it.
type ClusterSpec struct {
	// SecretRef names the Secret (in the keelson-federation namespace
	// unless Namespace is set) whose "kubeconfig" key holds the member's
	// kubeconfig.
	SecretRef SecretRef `json:"secretRef"`
	// Region, Zone and Provider are the topology placement spreads over;
	// they are also readable as labels topology.kubernetes.io/region etc.
	Region   string `json:"region,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Provider string `json:"provider,omitempty"`
	// Taints repel propagation unless a policy tolerates them. Effects
	// NoSchedule and NoExecute both keep new placements away.
	Taints []corev1.Taint `json:"taints,omitempty"`
}

// SecretRef points at a Secret on the host.
type SecretRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// ClusterStatus is written by the cluster health controller.
type ClusterStatus struct {
	// Conditions: Reachable (the apiserver answered at all) and Ready
	// (its /readyz answered ok).
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// KubernetesVersion reported by the member.
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`
	// Capacity summarises the member's nodes.
	Capacity *CapacitySummary `json:"capacity,omitempty"`
}

// CapacitySummary is the sum over Ready, schedulable member nodes.
// Available is allocatable minus the requests of non-terminated pods.
type CapacitySummary struct {
	Nodes       int32               `json:"nodes"`
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`
	Available   corev1.ResourceList `json:"available,omitempty"`
}

// Cluster condition types.
const (
	ClusterReachable = "Reachable"
	ClusterReady     = "Ready"
)

// PropagationPolicy selects objects in its namespace and places them.
type PropagationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PropagationSpec `json:"spec"`
}

// ClusterPropagationPolicy is a PropagationPolicy for every namespace and
// for cluster-scoped objects. A namespaced policy that matches an object
// always wins over a cluster-wide one.
type ClusterPropagationPolicy = PropagationPolicy

// PropagationSpec is shared by both policy kinds.
type PropagationSpec struct {
	// ResourceSelectors: an object matches if any selector matches.
	ResourceSelectors []ResourceSelector `json:"resourceSelectors"`
	// Placement says where matched objects go.
	Placement Placement `json:"placement,omitempty"`
	// Priority breaks ties between policies of the same scope matching
	// one object: higher wins, then the more specific selector (name >
	// labelSelector > kind), then the policy name.
	Priority int32 `json:"priority,omitempty"`
	// ConflictResolution applies when a member already has an object of
	// the same name that keelson did not create: Abort (default), Adopt
	// (only when it equals what would be applied) or Overwrite.
	ConflictResolution ConflictResolution `json:"conflictResolution,omitempty"`
	// Failover, if set, moves replicas away from clusters that stay
	// unhealthy longer than the toleration.
	Failover *FailoverPolicy `json:"failover,omitempty"`
	// PropagateDeps makes ConfigMaps, Secrets and ServiceAccounts that a
	// workload's pod template references follow the workload. Default true.
	PropagateDeps *bool `json:"propagateDeps,omitempty"`
}

// ResourceSelector selects objects by type and optionally name, namespace
// and labels. Empty fields match everything.
type ResourceSelector struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	Name          string                `json:"name,omitempty"`
	Namespace     string                `json:"namespace,omitempty"`
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// Placement is where and how many.
type Placement struct {
	// ClusterAffinity restricts the candidate clusters. With
	// ClusterAffinities set it is ignored.
	ClusterAffinity *ClusterAffinity `json:"clusterAffinity,omitempty"`
	// ClusterAffinities are fallback groups tried in order: the first
	// group with at least one feasible cluster is used.
	ClusterAffinities []ClusterAffinityTerm `json:"clusterAffinities,omitempty"`
	// SpreadConstraints spread the selected clusters over topology.
	SpreadConstraints []SpreadConstraint `json:"spreadConstraints,omitempty"`
	// ClusterTolerations tolerate cluster taints.
	ClusterTolerations []corev1.Toleration `json:"clusterTolerations,omitempty"`
	// ReplicaScheduling says how spec.replicas is shared; default
	// Duplicated (every selected cluster gets the full count).
	ReplicaScheduling *ReplicaScheduling `json:"replicaScheduling,omitempty"`
}

// ClusterAffinity selects clusters by name and labels.
type ClusterAffinity struct {
	ClusterNames    []string              `json:"clusterNames,omitempty"`
	ExcludeClusters []string              `json:"exclude,omitempty"`
	LabelSelector   *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// ClusterAffinityTerm is one named fallback group.
type ClusterAffinityTerm struct {
	AffinityName    string `json:"affinityName"`
	ClusterAffinity `json:",inline"`
}

// SpreadField is the topology a constraint spreads over.
type SpreadField string

// Spread fields.
const (
	SpreadByCluster SpreadField = "cluster"
	SpreadByRegion  SpreadField = "region"
	SpreadByZone    SpreadField = "zone"
)

// SpreadConstraint keeps the selected clusters within [MinGroups,
// MaxGroups] distinct values of SpreadByField. The best groups (by their
// best cluster score) are kept.
type SpreadConstraint struct {
	SpreadByField SpreadField `json:"spreadByField"`
	MinGroups     int32       `json:"minGroups,omitempty"`
	MaxGroups     int32       `json:"maxGroups,omitempty"`
}

// ReplicaSchedulingType is Duplicated or Divided.
type ReplicaSchedulingType string

// Replica scheduling types.
const (
	Duplicated ReplicaSchedulingType = "Duplicated"
	Divided    ReplicaSchedulingType = "Divided"
)

// DivisionPreference says what Divided divides by.
type DivisionPreference string

// Division preferences.
const (
	// DivideByWeight uses StaticWeights (clusters not listed weigh 0 and
	// get only their minimum; with no list every cluster weighs 1).
	DivideByWeight DivisionPreference = "Weighted"
	// DivideByCapacity weighs each cluster by how many replicas of the
	// workload its available capacity holds.
	DivideByCapacity DivisionPreference = "AvailableCapacity"
)

// ReplicaScheduling is how replicas are shared.
type ReplicaScheduling struct {
	Type       ReplicaSchedulingType `json:"type,omitempty"`
	Preference DivisionPreference    `json:"divisionPreference,omitempty"`
	// StaticWeights for Weighted division.
	StaticWeights []StaticWeight `json:"staticWeights,omitempty"`
	// Limits bound the replicas of named clusters.
	Limits []ReplicaLimit `json:"limits,omitempty"`
}

// StaticWeight gives clusters matching the affinity a weight.
type StaticWeight struct {
	TargetCluster ClusterAffinity `json:"targetCluster"`
	Weight        int64           `json:"weight"`
}

// ReplicaLimit bounds the replicas one cluster gets in a Divided placement.
type ReplicaLimit struct {
	Cluster string `json:"cluster"`
	Min     int32  `json:"min,omitempty"`
	// Max 0 means unbounded.
	Max int32 `json:"max,omitempty"`
}

// ConflictResolution is what to do with a pre-existing member object.
type ConflictResolution string

// Conflict resolutions.
const (
	ConflictAbort     ConflictResolution = "Abort"
	ConflictAdopt     ConflictResolution = "Adopt"
	ConflictOverwrite ConflictResolution = "Overwrite"
)

// FailoverPolicy is opt-in failover.
type FailoverPolicy struct {
	// TolerationSeconds a cluster may be not Ready before its replicas
	// move; default 300.
	TolerationSeconds *int32 `json:"tolerationSeconds,omitempty"`
	// Rebalance moves replicas back when the cluster recovers. Without it
	// a failed-over object stays away from the cluster until its policy
	// or placement changes.
	Rebalance bool `json:"rebalance,omitempty"`
}

// OverridePolicy changes objects per cluster (namespaced).
type OverridePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              OverrideSpec `json:"spec"`
}

// ClusterOverridePolicy is an OverridePolicy for every namespace.
type ClusterOverridePolicy = OverridePolicy

// OverrideSpec is shared by both override kinds.
type OverrideSpec struct {
	// ResourceSelectors: empty matches every object in scope.
	ResourceSelectors []ResourceSelector `json:"resourceSelectors,omitempty"`
	// Rules are applied in order.
	Rules []OverrideRule `json:"rules"`
}

// OverrideRule applies its overriders on the clusters TargetCluster
// matches (nil: every cluster).
type OverrideRule struct {
	TargetCluster *ClusterAffinity `json:"targetCluster,omitempty"`
	Overriders    Overriders       `json:"overriders"`
}

// Overriders are applied in this order: labels, annotations, image, args,
// env, then JSON patches (documented in docs/federation.md).
type Overriders struct {
	Labels      map[string]*string `json:"labels,omitempty"`
	Annotations map[string]*string `json:"annotations,omitempty"`
	Image       []ImageOverride    `json:"image,omitempty"`
	Args        []ArgsOverride     `json:"args,omitempty"`
	Env         []EnvOverride      `json:"env,omitempty"`
	JSONPatch   []JSONPatchOp      `json:"jsonPatch,omitempty"`
}

// ImageOverride replaces parts of container images. Container "" means
// every container (init containers included).
type ImageOverride struct {
	Container string `json:"container,omitempty"`
	// Image replaces the whole reference; otherwise Registry, Repository
	// and Tag replace their parts.
	Image      string `json:"image,omitempty"`
	Registry   string `json:"registry,omitempty"`
	Repository string `json:"repository,omitempty"`
	Tag        string `json:"tag,omitempty"`
}

// ArgsOverride sets or appends container args.
type ArgsOverride struct {
	Container string `json:"container,omitempty"`
	// Operator: "replace" (default) or "append".
	Operator string   `json:"operator,omitempty"`
	Args     []string `json:"args"`
}

// EnvOverride sets (or with Remove, deletes) container env vars by name.
type EnvOverride struct {
	Container string          `json:"container,omitempty"`
	Env       []corev1.EnvVar `json:"env,omitempty"`
	Remove    []string        `json:"remove,omitempty"`
}

// JSONPatchOp is one RFC 6902 operation.
type JSONPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from,omitempty"`
	Value any    `json:"value,omitempty"`
}

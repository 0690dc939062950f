// Package federation is the root of keelson federation: a host control
// plane that propagates ordinary Kubernetes objects (no wrapper types) from
// a host kube-apiserver to member clusters.
//
// The work is cut into small packages:
//
//	api/v1alpha1  Go types of the CRDs (Cluster, [Cluster]PropagationPolicy,
//	              [Cluster]OverridePolicy), their embedded CRD manifests and
//	              the well-known labels, annotations and finalizer
//	placement     filter/score plugins over clusters (registered as
//	              "federation.placement.<name>"), spread, and monotonic
//	              replica division; Explain says why each cluster was or was
//	              not chosen
//	override      applies OverridePolicies to a rendered object in a fixed,
//	              documented order
//	render        turns a host object into the manifest applied to one
//	              member (host-only fields stripped, replicas set, overrides
//	              applied) and hashes it
//	controller    the control plane: cluster health, propagation with
//	              server-side apply, conflicts, dependencies, status
//	              aggregation, deletion and failover; join/unjoin/explain
//
// docs/federation.md describes the APIs and behaviour for users.
package federation

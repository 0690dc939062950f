// Package interpodaffinity implements inter-pod affinity and
// anti-affinity with kube-scheduler's semantics: required terms filter
// (affinity needs a pod matching all terms in the node's domain of each
// term's topology key, or the pod itself matching them when no such pod
// exists yet; anti-affinity needs no matching pod in the domain; and no
// existing pod's required anti-affinity may select the incoming pod in
// that pod's domain), preferred terms — the pod's and existing pods' — score.
// Namespaces come from the term's namespaces list, its namespaceSelector
// (labels of Namespace objects), or the pod's own namespace.
//
// Speed: nothing here visits every pod. PreFilter and PreScore read the
// snapshot's incremental indexes (framework/index.go): per-domain counts
// of pods by namespace and label, kept up to date as pods come and go, for
// the incoming pod's own terms; and existing pods' terms aggregated into
// distinct groups with per-domain counts, looked up by the incoming pod's
// labels. Filter and Score are then a few map lookups per node. Selectors
// that are not a single equality/set requirement fall back to checking
// the pods of the nodes the index names as candidates.
package interpodaffinity

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
// Speed: kube-scheduler revisits terms for node pairs; here every pod in
// the cluster is visited once per scheduling cycle, in PreFilter, in
// parallel over nodes, to count matching pods per topology domain
// (key=value); Filter is then a few map lookups per node. Existing pods'
// anti-affinity only visits the nodes that hold such pods, which the
// snapshot lists apart. Scoring likewise aggregates weights per domain in
// PreScore, so Score is a lookup.
package interpodaffinity

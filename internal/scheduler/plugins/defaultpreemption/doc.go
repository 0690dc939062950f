// Package defaultpreemption makes room for a pod that fits nowhere by
// evicting lower-priority pods (PostFilter).
//
// Candidate nodes are those every Filter rejected as Unschedulable (not
// UnschedulableAndUnresolvable). On each, all pods of lower priority are
// taken out and the profile's filters are run again on that node; if the
// pod then fits, victims are given back one at a time — first those a
// PodDisruptionBudget protects, then the highest priorities — as long as
// the pod still fits. The node whose remaining victims break the fewest
// PDBs, then have the lowest highest priority, then are fewest, then have
// the lowest priority sum, wins. The victims are deleted through the API
// (UID precondition) and the pod's status.nominatedNodeName is set; the
// pod is retried when the deletions arrive.
//
// Limits: filters whose state is computed once per cycle (inter-pod
// affinity, topology spread) see the cluster before the evictions; the
// nominated node is not reserved against other pods in the meantime.
package defaultpreemption

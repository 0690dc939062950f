// Package podtopologyspread implements topology spread constraints with
// kube-scheduler's semantics. Hard constraints (DoNotSchedule) filter: a
// node whose domain would then hold more than maxSkew pods above the
// least-loaded eligible domain is rejected; fewer eligible domains than
// minDomains make the minimum 0. Eligible nodes carry every constraint's
// topology key and, per constraint, pass nodeAffinityPolicy (Honor by
// default: the pod's nodeSelector/required node affinity) and
// nodeTaintsPolicy (Ignore by default; Honor: untolerated NoSchedule and
// NoExecute taints exclude the node). Pods counted are in the incoming
// pod's namespace, match the selector (plus matchLabelKeys) and are not
// terminating. Soft constraints (ScheduleAnyway) score nodes with fewer
// matching pods in their domains higher.
//
// Counts are built once per pod in PreFilter/PreScore, one pass over the
// nodes; Filter and Score are lookups.
package podtopologyspread

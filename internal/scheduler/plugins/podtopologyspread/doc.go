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
// Pods without constraints of their own get default constraints (args
// defaultingType System, the default: SystemDefaultConstraints, hostname
// maxSkew 3 and zone maxSkew 5, ScheduleAnyway; or List with
// defaultConstraints) whose selector is derived, as kube-scheduler does,
// from the Services selecting the pod and its ReplicationController,
// ReplicaSet or StatefulSet owner; a pod with none gets no defaults. With
// system defaults a node lacking one topology key is still scored on the
// other. Listers come from the scheduler's informer factory
// (framework.InformerHandle); without one defaults do not apply.
//
// Counts are built once per pod in PreFilter/PreScore, one pass over the
// nodes; Filter and Score are lookups.
package podtopologyspread

// Package gang places groups of pods all or nothing ("gang" or
// co-scheduling). A PodGroup (scheduling.keelson.dev/v1alpha1, CRD in
// crd.yaml, exported as CRD) names minMember and scheduleTimeoutSeconds;
// member pods carry the label scheduling.keelson.dev/pod-group=<name> in
// the group's namespace.
//
// Each member goes through a normal scheduling cycle and, once a node is
// chosen, is held at Permit: its place stays assumed in the cache (so no
// other pod takes it) but it is not bound. When the member that brings the
// group's placed count (members bound or held, from the snapshot's label
// index, plus itself) to minMember passes Permit, every held member is
// allowed and all bind. If a member finds no node (PostFilter), fails to
// bind, or the group's timeout passes, every held member is rejected:
// each binding cycle then unreserves, forgets its assumed pod and
// requeues it, so nothing is left holding resources.
package gang

// Package override applies OverridePolicies to the manifest rendered for
// one member cluster.
//
// Order, fixed and documented in docs/federation.md:
//
//  1. policies: every matching ClusterOverridePolicy first, then every
//     matching OverridePolicy of the object's namespace; within a kind by
//     name. So a namespaced policy has the last word over a cluster-wide one.
//  2. within a policy, its rules in order, each only if its targetCluster
//     matches the member;
//  3. within a rule: labels, annotations, image, args, env, then JSON
//     patches last (so a patch can fix up anything the others did).
//
// Container overriders work on any pod template: spec.template.spec
// (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job),
// spec.jobTemplate.spec.template.spec (CronJob) or spec (Pod).
package override

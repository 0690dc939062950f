// Package controller is the federation control plane that runs against
// the host kube-apiserver.
//
// Controller.Start installs the CRDs, starts dynamic informers on the host
// (Clusters, policies, and every resource type a policy selects, plus the
// dependency kinds ConfigMap, Secret and ServiceAccount), and runs:
//
//   - the propagation loop: a rate-limited workqueue of host objects;
//     each reconcile matches a policy, places the object (package
//     placement), renders one manifest per cluster (package render), and
//     applies it to members with server-side apply (field manager
//     "keelson-federation"), skipping clusters whose rendered hash did not
//     change (kept in memory and in an annotation on the member object,
//     which member informers — filtered to managed objects — also cache,
//     so a restart does not rewrite unchanged objects). It then aggregates
//     the members' status back onto the host object (the host runs no
//     workload controllers, so the federation owns that status) and keeps a
//     per-cluster breakdown in the federation.keelson.dev/clusters
//     annotation. A finalizer makes deletion propagate; a deleted policy or
//     an unjoined cluster orphans member objects instead.
//   - the cluster health loop: every HealthInterval each member is probed
//     (/readyz: Reachable vs Ready) and its capacity summed from Nodes
//     (allocatable minus the requests of non-terminated pods).
//   - failover, opt-in per policy: see Failover in failover.go.
//
// Join and Unjoin register members; Explain prints a placement decision.
package controller

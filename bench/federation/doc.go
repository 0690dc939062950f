// Command federation benchmarks keelson federation against the targets of
// its issue, on one machine: a host kube-apiserver and N member clusters
// (default 10), each an apiserver-only cluster (no controller-manager, no
// nodes) on its own keelson store, and the control plane as a separate
// `keelson federation` process so that its memory and restart are real.
//
// Scenarios, in order:
//
//   - placement: placement decisions per second, in process, for a Divided
//     Deployment over 20 Cluster objects (static weights and available
//     capacity), one goroutine;
//   - burst: 1,000 Deployments created on the host at once (32 creators),
//     each Duplicated to every member; per object the time from its create
//     call returning to it existing in every member (seen by a watch on
//     each member); member writes per second over the burst;
//   - paced: the same shape at a fixed arrival rate (default 100 objects/s,
//     i.e. 1,000 member writes/s offered over 10 members), which is the
//     latency a steady stream sees;
//   - restart: 10,000 Deployments × 5 members; control-plane memory
//     (VmRSS) once settled; then the control plane is stopped, one object
//     is changed, the control plane is started again, and the time until
//     the change is in all five members is measured, with the member writes
//     the new process makes until its queue is empty (the target is the one
//     changed object's five);
//   - failover: 1,000 Deployments Divided over the other members with
//     failover on; one member's store is killed (the member turns
//     reachable-but-unready), and the time from the failover decision (Ready
//     false for longer than the toleration) to every workload's replicas
//     being on the healthy members is measured.
//
// Usage: go run ./bench/federation --bin bin --out docs/benchmarks-federation.md
package main

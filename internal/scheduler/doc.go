// Package scheduler is the Keelson scheduler: a scheduling queue, a cache
// of nodes and pods (with pods assumed on nodes before their binding is
// visible), the scheduling cycle that filters and scores every node with
// a profile's plugins (internal/scheduler/framework), and an optimistic
// binding cycle that lets several scheduler instances share one cluster
// without a leader.
//
// Flow: informers feed the cache (bound pods, nodes, namespaces) and the
// queue (unbound pods whose schedulerName is one of the profiles). The
// loop pops the highest-priority pod, refreshes the snapshot (only nodes
// that changed are cloned), runs PreFilter, Filter on all nodes in
// parallel, Score, picks the best node, assumes the pod there and starts
// the binding cycle in a goroutine. The binding cycle waits for Permit,
// claims room on the node in the shared ledger (see Ledger; a
// compare-and-swap on a per-node Lease), then binds through the
// pods/binding subresource. A pod that fits nowhere gets a PodScheduled
// condition explaining why and waits in the queue until a cluster event
// one of its rejecting plugins cares about.
package scheduler

// Package framework is the contract between the Keelson scheduler and its
// plugins.
//
// A pod goes through two cycles. The scheduling cycle runs one pod at a
// time: PreFilter once, Filter for every node (in parallel), PostFilter when
// no node passes, PreScore once, Score for every feasible node (in
// parallel) followed by each scorer's NormalizeScore, then Reserve on the
// chosen node and Permit. The binding cycle runs concurrently with later
// scheduling cycles: it waits for Permit, lets the scheduler verify its
// optimistic claim on the node, then runs PreBind, Bind and PostBind. A
// failure after Reserve runs Unreserve in reverse order. PreEnqueue gates a
// pod before it enters the active queue and QueueSort orders that queue.
//
// Every extension point is a tiny interface embedding Plugin (a Name()
// method); a plugin implements only the points it needs and the framework
// discovers them with type assertions. Results are *Status, where nil
// means success.
//
// Plugins see the cluster through NodeInfo (a node, its pods and their
// precomputed requests, ports and affinity terms) and a Snapshot taken
// before each scheduling cycle, which is immutable while the cycle runs.
// Plugins receive a PodInfo rather than a bare *v1.Pod so that the pod's
// requests, host ports and parsed affinity terms are computed once.
//
// Plugins register from init() through the project's one registry
// (internal/plugin) under "scheduler.<kind>.<name>", where kind is the
// plugin's main extension point; see Register. A profile (ProfileConfig)
// names the plugins it enables, in order, with a weight and typed args; a
// plugin enabled in a profile takes part in every extension point it
// implements unless the profile restricts it to some.
//
// Concurrency: CycleState is written only from the sequential extension
// points (PreFilter, PreScore, Reserve, Permit) and read from the parallel
// ones (Filter, Score).
package framework

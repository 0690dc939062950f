// Package validate checks a finished placement — nodes and the pods bound
// to them — against every constraint the scheduler promises: resources
// (requests incl. init/sidecar and overhead, pod count, extended
// resources), host ports, nodeName, nodeSelector and required node
// affinity, NoSchedule/NoExecute taints, required pod affinity and
// anti-affinity (both directions), and hard topology spread. Tests and
// benchmarks run it after a scheduling run; a non-empty result is a bug.
//
// It recomputes everything from the objects, independently of the
// scheduler's cache and plugins' state, so that a bug there is caught.
// Topology spread is checked on the final state: for every pod's
// DoNotSchedule constraint, its domain's count minus the least-loaded
// eligible domain's count is at most maxSkew (which placements made one
// at a time preserve); minDomains is not checked yet.
package validate

// Package noderesources holds the resource plugins.
//
// noderesourcesfit filters nodes that lack room for the pod's requests —
// the kubelet's admission rule: the sum of the containers, restartable
// init (sidecar) containers counted for the pod's whole life, the largest
// init-phase need, pod-level requests where set, plus spec.overhead — for
// CPU, memory, ephemeral storage, pod count and every extended resource.
// Its score follows a strategy: LeastAllocated (spread) or MostAllocated
// (bin packing), a weighted average over configured resources.
//
// balancedallocation scores nodes by how evenly the pod would leave their
// resources used (1 minus the standard deviation of the used fractions).
//
// Fits is exported so the binder's conflict check and the placement
// validator apply exactly the same rule.
package noderesources

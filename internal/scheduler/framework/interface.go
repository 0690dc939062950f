package framework

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Score bounds: every Score plugin's NormalizeScore (or Score, for
// plugins without one) must return values in [MinNodeScore, MaxNodeScore].
const (
	MinNodeScore int64 = 0
	MaxNodeScore int64 = 100
)

// Plugin is the base of every extension point.
type Plugin interface {
	Name() string
}

// PreEnqueuePlugin decides whether a pod may enter the active queue. A
// non-success status keeps the pod aside until a cluster event lets it in.
type PreEnqueuePlugin interface {
	Plugin
	PreEnqueue(ctx context.Context, pod *v1.Pod) *Status
}

// QueueSortPlugin orders the active queue; every profile of one scheduler
// must use the same one.
type QueueSortPlugin interface {
	Plugin
	Less(a, b *QueuedPodInfo) bool
}

// PreFilterResult narrows the nodes worth filtering; nil NodeNames means
// all nodes.
type PreFilterResult struct {
	NodeNames map[string]struct{}
}

// PreFilterPlugin runs once per cycle before Filter, typically to compute
// per-pod state (written to the CycleState) that makes Filter cheap.
// Returning Skip skips the plugin's Filter for this pod.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *PodInfo) (*PreFilterResult, *Status)
}

// FilterPlugin says whether pod can run on node. It is called in parallel
// for many nodes and must not write to state.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status
}

// PostFilterResult is what a PostFilter plugin achieved, e.g. the node
// where preemption made room.
type PostFilterResult struct {
	NominatedNodeName string
	// Victims are the pods evicted to make room on NominatedNodeName; the
	// scheduler retries the pod as soon as all of them are gone, and does
	// not let it preempt again while any is still there.
	Victims []types.UID
}

// PostFilterPlugin runs when no node passed Filter (preemption lives here).
type PostFilterPlugin interface {
	Plugin
	PostFilter(ctx context.Context, state *CycleState, pod *PodInfo, diag *Diagnosis) (*PostFilterResult, *Status)
}

// PreScorePlugin runs once with the feasible nodes before Score. Returning
// Skip skips the plugin's Score for this pod.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) *Status
}

// ScorePlugin ranks a feasible node. It is called in parallel.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) (int64, *Status)
}

// NodeScore is one node's score from one plugin, or the weighted total.
type NodeScore struct {
	Name  string
	Score int64
}

// ScoreNormalizer is implemented by Score plugins whose raw scores are not
// already in [MinNodeScore, MaxNodeScore]; it rewrites scores in place.
type ScoreNormalizer interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *PodInfo, scores []NodeScore) *Status
}

// ReservePlugin is told when a node is reserved for the pod, and when that
// reservation is undone (bind failed, permit rejected, claim lost).
// Unreserve must be idempotent.
type ReservePlugin interface {
	Plugin
	Reserve(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status
	Unreserve(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string)
}

// PermitPlugin may approve, reject or delay (Wait, up to the returned
// timeout) the binding of a pod; gangs are built on it.
type PermitPlugin interface {
	Plugin
	Permit(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) (*Status, time.Duration)
}

// PreBindPlugin runs before Bind (for example to provision volumes).
type PreBindPlugin interface {
	Plugin
	PreBind(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status
}

// BindPlugin binds the pod. Returning Skip passes to the next Bind plugin.
type BindPlugin interface {
	Plugin
	Bind(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status
}

// PostBindPlugin is informed that a pod was bound.
type PostBindPlugin interface {
	Plugin
	PostBind(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string)
}

// EventResource is the kind of object a cluster event is about.
type EventResource string

// The resources whose changes can make a pod schedulable.
const (
	// EventNode: a Node object.
	EventNode EventResource = "Node"
	// EventAssignedPod: a pod already bound to a node (added, changed or
	// deleted); the pod being scheduled never counts.
	EventAssignedPod EventResource = "AssignedPod"
	// EventUnscheduledPod: a pod not yet bound (e.g. its gates removed).
	EventUnscheduledPod EventResource = "UnscheduledPod"
	// EventNamespace: a Namespace (labels matter to namespaceSelector).
	EventNamespace EventResource = "Namespace"
)

// ActionType is a bit set of what happened.
type ActionType int

// Actions.
const (
	Add ActionType = 1 << iota
	Update
	Delete
	All = Add | Update | Delete
)

// ClusterEvent is a change the queue reacts to.
type ClusterEvent struct {
	Resource EventResource
	Action   ActionType
}

// Match reports whether ev is covered by c.
func (c ClusterEvent) Match(ev ClusterEvent) bool {
	return c.Resource == ev.Resource && c.Action&ev.Action != 0
}

// EnqueueExtensions is implemented by plugins that can reject pods; it
// lists the events that may make a rejected pod fit. A plugin that
// rejects without implementing it has its pods retried on every event.
type EnqueueExtensions interface {
	EventsToRegister() []ClusterEvent
}

// WaitingPod is a pod held by a Permit plugin.
type WaitingPod interface {
	Pod() *v1.Pod
	// PendingPlugins lists the Permit plugins still to allow the pod.
	PendingPlugins() []string
	// Allow records plugin's approval; the pod binds once all approve.
	Allow(plugin string)
	// Reject fails the pod's binding cycle with msg.
	Reject(plugin, msg string)
}

// Handle is what plugins get from the framework.
type Handle interface {
	// Snapshot is the snapshot of the running cycle.
	Snapshot() *Snapshot
	// ClientSet may be nil in tests and simulations.
	ClientSet() kubernetes.Interface
	// Parallelizer runs work over nodes with the configured parallelism.
	Parallelizer() Parallelizer
	// GetWaitingPod returns the waiting pod with uid, or nil.
	GetWaitingPod(uid types.UID) WaitingPod
	// IterateOverWaitingPods calls fn for each waiting pod.
	IterateOverWaitingPods(fn func(WaitingPod))
}

// Diagnosis explains why no node fits.
type Diagnosis struct {
	// NodeToStatus is each rejected node's status.
	NodeToStatus map[string]*Status
	// UnschedulablePlugins rejected the pod somewhere.
	UnschedulablePlugins map[string]struct{}
	// PreFilterMsg is set when PreFilter rejected the pod outright.
	PreFilterMsg string
	// PostFilterMsg is what PostFilter reported.
	PostFilterMsg string
}

// AddPlugin records a rejecting plugin.
func (d *Diagnosis) AddPlugin(name string) {
	if name == "" {
		return
	}
	if d.UnschedulablePlugins == nil {
		d.UnschedulablePlugins = map[string]struct{}{}
	}
	d.UnschedulablePlugins[name] = struct{}{}
}

// FitError is returned when no node fits a pod. Its message is what users
// see in the PodScheduled condition.
type FitError struct {
	Pod         *v1.Pod
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error is "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had
// untolerated taint {dedicated: gpu}." — reasons counted over nodes, most
// frequent first.
func (f *FitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes are available", f.NumAllNodes)
	if f.Diagnosis.PreFilterMsg != "" {
		b.WriteString(": " + f.Diagnosis.PreFilterMsg)
	} else if len(f.Diagnosis.NodeToStatus) > 0 {
		counts := map[string]int{}
		for _, s := range f.Diagnosis.NodeToStatus {
			for _, r := range s.Reasons() {
				counts[r]++
			}
		}
		reasons := make([]string, 0, len(counts))
		for r := range counts {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if counts[reasons[i]] != counts[reasons[j]] {
				return counts[reasons[i]] > counts[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		for i, r := range reasons {
			if i == 0 {
				b.WriteString(": ")
			} else {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d %s", counts[r], r)
		}
	}
	b.WriteString(".")
	if f.Diagnosis.PostFilterMsg != "" {
		b.WriteString(" " + f.Diagnosis.PostFilterMsg)
	}
	return b.String()
}

// NodeLocalPlugin is implemented by Filter and Score plugins whose verdict
// and raw score for a pod on a node depend only on the pod's spec and that
// node's NodeInfo (and on state their PreFilter or PreScore derived from
// the pod alone). The scheduler may then keep a node's results for the
// next pod with the same spec until the node's NodeInfo changes.
type NodeLocalPlugin interface {
	NodeLocal()
}

// CycleNodeLocalPlugin is implemented by Filter and Score plugins that
// are node-local (see NodeLocalPlugin) for some pods and cluster states
// only. NodeLocalIn reports whether they are in this cycle; it is asked
// after the plugin's PreFilter (as a Filter plugin) or PreScore (as a
// Score plugin) ran, with score telling which.
//
// The promise is stronger than "this cycle only": whenever NodeLocalIn is
// true, the plugin's verdict and raw score for a node are the same
// function of the pod's spec and the node's NodeInfo, so results kept
// from any earlier cycle where it was true stay valid.
type CycleNodeLocalPlugin interface {
	NodeLocalIn(state *CycleState, score bool) bool
}

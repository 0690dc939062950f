package defaultpreemption

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	policylisters "k8s.io/client-go/listers/policy/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "defaultpreemption"

func init() {
	framework.Register(framework.KindPostFilter, Name, "preemption: evict the fewest, lowest-priority pods, respecting PodDisruptionBudgets", New)
}

// Plugin implements PostFilter.
type Plugin struct {
	h framework.Handle
	// pdbs reads PodDisruptionBudgets from the scheduler's informer; nil
	// without an informer factory (then they are listed through the API
	// at each preemption).
	pdbs       policylisters.PodDisruptionBudgetLister
	pdbsSynced func() bool
}

// New is the factory; no args.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	p := &Plugin{h: h}
	if ih, ok := h.(framework.InformerHandle); ok && ih.SharedInformerFactory() != nil {
		inf := ih.SharedInformerFactory().Policy().V1().PodDisruptionBudgets()
		p.pdbs, p.pdbsSynced = inf.Lister(), inf.Informer().HasSynced
	}
	return p, framework.DecodeArgs(raw, &struct{}{})
}

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

func priority(p *v1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// Candidate is a node where evicting Victims lets the pod fit.
type Candidate struct {
	Node          string
	Victims       []*framework.PodInfo
	PDBViolations int
}

type pdb struct {
	namespace string
	selector  labels.Selector
	allowed   int32
}

func (c *Candidate) key() (int, int32, int, int64) {
	var hi int32 = -1 << 31
	var sum int64
	for _, v := range c.Victims {
		hi = max(hi, priority(v.Pod))
		sum += int64(priority(v.Pod))
	}
	return c.PDBViolations, hi, len(c.Victims), sum
}

// better reports whether a is a better candidate than b for pod. Equal
// candidates are ordered by a hash of (pod, node): each preemptor has its
// own order, so preemptors deciding at once (several instances, or before
// a nomination is seen) rarely pick the same node.
func better(pod types.UID, a, b *Candidate) bool {
	a1, a2, a3, a4 := a.key()
	b1, b2, b3, b4 := b.key()
	switch {
	case a1 != b1:
		return a1 < b1
	case a2 != b2:
		return a2 < b2
	case a3 != b3:
		return a3 < b3
	case a4 != b4:
		return a4 < b4
	}
	if ha, hb := tieHash(pod, a.Node), tieHash(pod, b.Node); ha != hb {
		return ha < hb
	}
	return a.Node < b.Node
}

func tieHash(pod types.UID, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(pod))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

// PostFilter finds the best candidate, evicts its victims and nominates
// its node.
func (p *Plugin) PostFilter(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, diag *framework.Diagnosis) (*framework.PostFilterResult, *framework.Status) {
	if pol := pod.Pod.Spec.PreemptionPolicy; pol != nil && *pol == v1.PreemptNever {
		return nil, framework.NewStatus(framework.Unschedulable, "Preemption is disabled for the pod.")
	}
	pdbs, err := p.listPDBs(ctx)
	if err != nil {
		return nil, framework.AsStatus(err)
	}
	// With several instances, the room is held in the node's ledger
	// before anything is evicted: another instance that sees the victims
	// go before it sees the nomination must not bind its pods into it,
	// and two preemptors must not both count on the same victims. A node
	// whose room turns out to be reserved already is skipped for the next
	// best one (a few times: the other preemptors' nominations reach this
	// instance's cache soon after).
	var best *Candidate
	var reserved []string
	for {
		best = p.findCandidate(ctx, state, pod, diag, pdbs, reserved)
		if best == nil {
			if len(reserved) > 0 {
				return nil, framework.NewStatus(framework.Unschedulable, fmt.Sprintf("Room on node(s) %s is reserved for other preemptors.", strings.Join(reserved, ", ")))
			}
			return nil, framework.NewStatus(framework.Unschedulable, "Preemption is not helpful for scheduling.")
		}
		r, ok := p.h.(framework.PreemptionReserver)
		if !ok {
			break
		}
		err := r.ReserveForPreemptor(ctx, pod, best.Node, best.Victims)
		if err == nil {
			break
		}
		if !errors.Is(err, framework.ErrRoomReserved) {
			return nil, framework.AsStatus(err)
		}
		reserved = append(reserved, best.Node)
		if len(reserved) == maxReservedTries {
			return nil, framework.NewStatus(framework.Unschedulable, fmt.Sprintf("Room on node(s) %s is reserved for other preemptors.", strings.Join(reserved, ", ")))
		}
	}
	if err := p.evict(ctx, pod.Pod, best); err != nil {
		return nil, framework.AsStatus(err)
	}
	victims := make([]types.UID, len(best.Victims))
	for i, v := range best.Victims {
		victims[i] = v.UID()
	}
	return &framework.PostFilterResult{NominatedNodeName: best.Node, Victims: victims}, nil
}

func (p *Plugin) listPDBs(ctx context.Context) ([]pdb, error) {
	var items []*policyv1.PodDisruptionBudget
	if p.pdbs != nil && p.pdbsSynced() {
		l, err := p.pdbs.List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("listing pod disruption budgets: %w", err)
		}
		items = l
	} else if c := p.h.ClientSet(); c != nil {
		list, err := c.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing pod disruption budgets: %w", err)
		}
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
	}
	out := make([]pdb, 0, len(items))
	for _, b := range items {
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || b.Spec.Selector == nil {
			continue
		}
		out = append(out, pdb{namespace: b.Namespace, selector: sel, allowed: b.Status.DisruptionsAllowed})
	}
	return out, nil
}

// violations counts the victims whose eviction a PDB does not allow,
// spending each PDB's allowed disruptions in order.
func violations(victims []*framework.PodInfo, pdbs []pdb) (n int, protected map[*framework.PodInfo]bool) {
	allowed := make([]int32, len(pdbs))
	for i := range pdbs {
		allowed[i] = pdbs[i].allowed
	}
	protected = map[*framework.PodInfo]bool{}
	for _, v := range victims {
		for i := range pdbs {
			if pdbs[i].namespace == v.Pod.Namespace && pdbs[i].selector.Matches(labels.Set(v.Pod.Labels)) {
				allowed[i]--
				if allowed[i] < 0 {
					protected[v] = true
				}
			}
		}
		if protected[v] {
			n++
		}
	}
	return n, protected
}

// FindCandidate returns the best node to preempt on, or nil.
func (p *Plugin) FindCandidate(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, diag *framework.Diagnosis, pdbs []pdb) *Candidate {
	return p.findCandidate(ctx, state, pod, diag, pdbs, nil)
}

// maxReservedTries bounds the candidates PostFilter tries when their room
// is reserved for other preemptors.
const maxReservedTries = 3

// findCandidate is FindCandidate without the nodes in skip.
func (p *Plugin) findCandidate(ctx context.Context, state *framework.CycleState, pod *framework.PodInfo, diag *framework.Diagnosis, pdbs []pdb, skip []string) *Candidate {
	runner, ok := p.h.(framework.FilterRunner)
	if !ok {
		return nil
	}
	snap := p.h.Snapshot()
	prio := priority(pod.Pod)
	nom, _ := p.h.(framework.NominatorHandle)
	var best *Candidate
	for name, st := range diag.NodeToStatus {
		if st.Code() != framework.Unschedulable || slices.Contains(skip, name) {
			continue
		}
		ni, ok := snap.Get(name)
		if !ok {
			continue
		}
		var lower []*framework.PodInfo
		for _, e := range ni.Pods {
			if priority(e.Pod) < prio && e.Pod.DeletionTimestamp == nil {
				lower = append(lower, e)
			}
		}
		if len(lower) == 0 {
			continue
		}
		trial := ni.Clone()
		for _, v := range lower {
			trial.RemovePod(v.UID())
		}
		// Room already promised to other preemptors of this priority or
		// higher is not free for this one.
		if nom != nil {
			for _, o := range nom.NominatedPods(name, prio, pod.UID()) {
				trial.AddPodInfo(o)
			}
		}
		if !runner.RunFilterPlugins(ctx, state, pod, trial).IsSuccess() {
			continue
		}
		// Give victims back: PDB-protected ones first, then by priority,
		// highest first; keep each that still lets the pod fit.
		_, protected := violations(lower, pdbs)
		sort.SliceStable(lower, func(i, j int) bool {
			if protected[lower[i]] != protected[lower[j]] {
				return protected[lower[i]]
			}
			return priority(lower[i].Pod) > priority(lower[j].Pod)
		})
		var victims []*framework.PodInfo
		for _, v := range lower {
			trial.AddPodInfo(v)
			if !runner.RunFilterPlugins(ctx, state, pod, trial).IsSuccess() {
				trial.RemovePod(v.UID())
				victims = append(victims, v)
			}
		}
		c := &Candidate{Node: name, Victims: victims}
		c.PDBViolations, _ = violations(victims, pdbs)
		if best == nil || better(pod.UID(), c, best) {
			best = c
		}
	}
	return best
}

func (p *Plugin) evict(ctx context.Context, pod *v1.Pod, c *Candidate) error {
	client := p.h.ClientSet()
	if client == nil {
		return nil
	}
	for _, v := range c.Victims {
		uid := v.Pod.UID
		err := client.CoreV1().Pods(v.Pod.Namespace).Delete(ctx, v.Pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("preempting pod %s/%s: %w", v.Pod.Namespace, v.Pod.Name, err)
		}
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"nominatedNodeName": c.Node}})
	if err != nil {
		return fmt.Errorf("encoding nomination: %w", err)
	}
	if _, err := client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("recording nominated node: %w", err)
	}
	return nil
}

package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Options are what a Framework needs besides its profile.
type Options struct {
	// Client is handed to plugins (Bind needs it); may be nil in tests.
	Client kubernetes.Interface
	// Parallelism is the number of workers for Filter and Score.
	Parallelism int
	// Dynamic reaches custom resources (PodGroups); may be nil.
	Dynamic dynamic.Interface
	// Informers is the scheduler's informer factory; plugins that need
	// listers (e.g. Services for default spreading) register informers on
	// it in their factory, and the scheduler starts and syncs them before
	// the first cycle. May be nil (tests, simulations).
	Informers informers.SharedInformerFactory
}

// InformerHandle is implemented by handles that offer the scheduler's
// informer factory; plugins that need listers assert it (the factory may
// be nil).
type InformerHandle interface {
	SharedInformerFactory() informers.SharedInformerFactory
}

// FilterRunner is implemented by handles that can run the profile's
// Filter plugins on a node of the caller's making (preemption tries nodes
// with victims removed).
type FilterRunner interface {
	RunFilterPlugins(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status
}

// NominatorHandle is implemented by handles that know the pods waiting for
// room on a node they preempted for (status.nominatedNodeName). Their
// requests are reserved against pods of lower or equal priority.
type NominatorHandle interface {
	// NominatedPods returns the pods nominated to node, except exclude,
	// whose priority is at least minPriority. The result must not be
	// modified.
	NominatedPods(node string, minPriority int32, exclude types.UID) []*PodInfo
}

// Nominator answers NominatorHandle for a Framework (the scheduler's
// record of nominations).
type Nominator interface {
	NominatedPods(node string, minPriority int32, exclude types.UID) []*PodInfo
}

// PendingShape is one request shape (CPU and memory) of the pods waiting
// to be scheduled, with the number of pending pods that ask for it.
type PendingShape struct {
	MilliCPU, Memory int64
	Count            int
}

// PendingSource answers PendingHandle for a Framework (the scheduler's record of
// its pending pods).
type PendingSource interface {
	PendingShapes(max int) []PendingShape
}

// PendingHandle is implemented by handles that know the requests of the
// pods waiting to be scheduled (not yet bound, not being bound).
type PendingHandle interface {
	// PendingShapes returns at most max shapes, the most requested first;
	// the result must not be modified.
	PendingShapes(max int) []PendingShape
}

// ErrRoomReserved is returned (wrapped) by ReserveForPreemptor when the
// node, without the victims, has no room for the preemptor once the
// ledger's entries (other instances' placements and reservations) are
// counted.
var ErrRoomReserved = errors.New("room already reserved on the node")

// PreemptionReserver is implemented by handles that can hold a
// preemptor's room on a node, for other scheduler instances to count,
// before its victims are evicted (the scheduler's claim ledger).
type PreemptionReserver interface {
	// ReserveForPreemptor records pod's room on node, checked against the
	// node without victims; an error wrapping ErrRoomReserved means the
	// room is not there and nothing should be evicted.
	ReserveForPreemptor(ctx context.Context, pod *PodInfo, node string, victims []*PodInfo) error
}

// DynamicHandle is implemented by handles that can reach custom
// resources; plugins that need one assert it.
type DynamicHandle interface {
	DynamicClient() dynamic.Interface
}

// Framework runs one profile's plugins at each extension point. It is the
// Handle its plugins receive.
type Framework struct {
	profile   ProfileConfig
	client    kubernetes.Interface
	dynamic   dynamic.Interface
	inf       informers.SharedInformerFactory
	par       Parallelizer
	snapshot  atomic.Pointer[Snapshot]
	waiting   *waitingPods
	nominator atomic.Pointer[Nominator]
	pending   atomic.Pointer[PendingSource]
	reserver  atomic.Pointer[PreemptionReserver]

	plugins    []Plugin
	preEnqueue []PreEnqueuePlugin
	queueSort  QueueSortPlugin
	preFilter  []PreFilterPlugin
	filter     []FilterPlugin
	postFilter []PostFilterPlugin
	preScore   []PreScorePlugin
	score      []ScorePlugin
	weights    []int64
	reserve    []ReservePlugin
	permit     []PermitPlugin
	preBind    []PreBindPlugin
	bind       []BindPlugin
	postBind   []PostBindPlugin
	events     map[string][]ClusterEvent

	scoreMu   sync.Mutex
	scoreBuf  [][]NodeScore
	totalsBuf []NodeScore
}

var _ Handle = (*Framework)(nil)

// SharedInformerFactory implements InformerHandle.
func (f *Framework) SharedInformerFactory() informers.SharedInformerFactory { return f.inf }

// New builds every plugin of profile and sorts them into extension points.
func New(profile ProfileConfig, opts Options) (*Framework, error) {
	if err := profile.Validate(); err != nil {
		return nil, err
	}
	f := &Framework{
		profile: profile,
		client:  opts.Client,
		dynamic: opts.Dynamic,
		inf:     opts.Informers,
		par:     Parallelizer{Workers: max(1, opts.Parallelism)},
		waiting: newWaitingPods(),
		events:  map[string][]ClusterEvent{},
	}
	f.snapshot.Store(NewSnapshot(nil, nil))
	for _, pc := range profile.Plugins {
		factory, err := LookupFactory(pc.Name)
		if err != nil {
			return nil, err
		}
		p, err := factory(pc.Args, f)
		if err != nil {
			return nil, fmt.Errorf("profile %q: plugin %s: %w", profile.SchedulerName, pc.Name, err)
		}
		if p.Name() != pc.Name {
			return nil, fmt.Errorf("profile %q: plugin %s reports name %q", profile.SchedulerName, pc.Name, p.Name())
		}
		f.plugins = append(f.plugins, p)
		if x, ok := p.(PreEnqueuePlugin); ok && pc.enabledAt("PreEnqueue") {
			f.preEnqueue = append(f.preEnqueue, x)
		}
		if x, ok := p.(QueueSortPlugin); ok && pc.enabledAt("QueueSort") {
			if f.queueSort != nil {
				return nil, fmt.Errorf("profile %q: two queue sort plugins, %s and %s", profile.SchedulerName, f.queueSort.Name(), x.Name())
			}
			f.queueSort = x
		}
		if x, ok := p.(PreFilterPlugin); ok && pc.enabledAt("PreFilter") {
			f.preFilter = append(f.preFilter, x)
		}
		if x, ok := p.(FilterPlugin); ok && pc.enabledAt("Filter") {
			f.filter = append(f.filter, x)
		}
		if x, ok := p.(PostFilterPlugin); ok && pc.enabledAt("PostFilter") {
			f.postFilter = append(f.postFilter, x)
		}
		if x, ok := p.(PreScorePlugin); ok && pc.enabledAt("PreScore") {
			f.preScore = append(f.preScore, x)
		}
		if x, ok := p.(ScorePlugin); ok && pc.enabledAt("Score") {
			f.score = append(f.score, x)
			w := int64(pc.Weight)
			if w == 0 {
				w = 1
			}
			f.weights = append(f.weights, w)
		}
		if x, ok := p.(ReservePlugin); ok && pc.enabledAt("Reserve") {
			f.reserve = append(f.reserve, x)
		}
		if x, ok := p.(PermitPlugin); ok && pc.enabledAt("Permit") {
			f.permit = append(f.permit, x)
		}
		if x, ok := p.(PreBindPlugin); ok && pc.enabledAt("PreBind") {
			f.preBind = append(f.preBind, x)
		}
		if x, ok := p.(BindPlugin); ok && pc.enabledAt("Bind") {
			f.bind = append(f.bind, x)
		}
		if x, ok := p.(PostBindPlugin); ok && pc.enabledAt("PostBind") {
			f.postBind = append(f.postBind, x)
		}
		if x, ok := p.(EnqueueExtensions); ok {
			f.events[p.Name()] = x.EventsToRegister()
		} else {
			f.events[p.Name()] = nil
		}
	}
	if f.queueSort == nil {
		return nil, fmt.Errorf("profile %q: no queue sort plugin enabled", profile.SchedulerName)
	}
	if len(f.bind) == 0 {
		return nil, fmt.Errorf("profile %q: no bind plugin enabled", profile.SchedulerName)
	}
	return f, nil
}

// ProfileName is the profile's schedulerName.
func (f *Framework) ProfileName() string { return f.profile.SchedulerName }

// QueueSort returns the profile's queue sort plugin.
func (f *Framework) QueueSort() QueueSortPlugin { return f.queueSort }

// PluginEvents maps each plugin to the cluster events that may help pods
// it rejected; a nil list means any event.
func (f *Framework) PluginEvents() map[string][]ClusterEvent { return f.events }

// Plugins lists the plugin instances, in profile order.
func (f *Framework) Plugins() []Plugin { return f.plugins }

// SetSnapshot installs the snapshot plugins see through Snapshot().
func (f *Framework) SetSnapshot(s *Snapshot) { f.snapshot.Store(s) }

// Snapshot implements Handle.
func (f *Framework) Snapshot() *Snapshot { return f.snapshot.Load() }

// SetNominator installs the source of nominated pods (the scheduler's).
func (f *Framework) SetNominator(n Nominator) { f.nominator.Store(&n) }

// NominatedPods implements NominatorHandle (none without a nominator).
func (f *Framework) NominatedPods(node string, minPriority int32, exclude types.UID) []*PodInfo {
	if n := f.nominator.Load(); n != nil {
		return (*n).NominatedPods(node, minPriority, exclude)
	}
	return nil
}

// SetPending installs the source of pending pods' shapes (the scheduler's).
func (f *Framework) SetPending(p PendingSource) { f.pending.Store(&p) }

// PendingShapes implements PendingHandle (none without a source).
func (f *Framework) PendingShapes(max int) []PendingShape {
	if p := f.pending.Load(); p != nil {
		return (*p).PendingShapes(max)
	}
	return nil
}

// SetPreemptionReserver installs what holds preemptors' room (the
// scheduler's ledger, with several instances).
func (f *Framework) SetPreemptionReserver(r PreemptionReserver) { f.reserver.Store(&r) }

// ReserveForPreemptor implements PreemptionReserver (nothing to do without
// a reserver).
func (f *Framework) ReserveForPreemptor(ctx context.Context, pod *PodInfo, node string, victims []*PodInfo) error {
	if r := f.reserver.Load(); r != nil {
		return (*r).ReserveForPreemptor(ctx, pod, node, victims)
	}
	return nil
}

// ClientSet implements Handle.
func (f *Framework) ClientSet() kubernetes.Interface { return f.client }

// DynamicClient implements DynamicHandle (nil when not configured).
func (f *Framework) DynamicClient() dynamic.Interface { return f.dynamic }

// Parallelizer implements Handle.
func (f *Framework) Parallelizer() Parallelizer { return f.par }

// GetWaitingPod implements Handle.
func (f *Framework) GetWaitingPod(uid types.UID) WaitingPod {
	if w := f.waiting.get(uid); w != nil {
		return w
	}
	return nil
}

// IterateOverWaitingPods implements Handle.
func (f *Framework) IterateOverWaitingPods(fn func(WaitingPod)) { f.waiting.each(fn) }

// RunPreEnqueuePlugins returns the first non-success status.
func (f *Framework) RunPreEnqueuePlugins(ctx context.Context, pod *PodInfo) *Status {
	for _, p := range f.preEnqueue {
		if s := p.PreEnqueue(ctx, pod.Pod); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunPreFilterPlugins runs every PreFilter plugin and intersects their
// node sets. A rejection stops the cycle; Skip disables that plugin's
// Filter for this pod.
func (f *Framework) RunPreFilterPlugins(ctx context.Context, state *CycleState, pod *PodInfo) (*PreFilterResult, *Status) {
	var result *PreFilterResult
	for _, p := range f.preFilter {
		r, s := p.PreFilter(ctx, state, pod)
		switch {
		case s.IsSkip():
			if state.skipFilter == nil {
				state.skipFilter = map[string]bool{}
			}
			state.skipFilter[p.Name()] = true
			continue
		case !s.IsSuccess():
			return nil, s.WithPlugin(p.Name())
		}
		if r == nil || r.NodeNames == nil {
			continue
		}
		if result == nil {
			result = &PreFilterResult{NodeNames: r.NodeNames}
			continue
		}
		merged := map[string]struct{}{}
		for n := range result.NodeNames {
			if _, ok := r.NodeNames[n]; ok {
				merged[n] = struct{}{}
			}
		}
		result.NodeNames = merged
	}
	return result, nil
}

// RunFilterPlugins returns the first rejection for node, tagged with its
// plugin. Safe for concurrent use once HasFilters has been called for the
// state (the scheduler does so before filtering nodes in parallel).
func (f *Framework) RunFilterPlugins(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo) *Status {
	filters := state.filters
	if !state.filtersDone {
		filters = f.activeFilters(state)
	}
	for _, p := range filters {
		if s := p.Filter(ctx, state, pod, node); !s.IsSuccess() {
			if !s.IsRejected() {
				return NewStatus(Error, fmt.Sprintf("running %s filter: %s", p.Name(), s.Message())).WithPlugin(p.Name())
			}
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

func (f *Framework) activeFilters(state *CycleState) []FilterPlugin {
	if len(state.skipFilter) == 0 {
		return f.filter
	}
	out := make([]FilterPlugin, 0, len(f.filter))
	for _, p := range f.filter {
		if !state.skipFilter[p.Name()] {
			out = append(out, p)
		}
	}
	return out
}

// HasFilters reports whether any Filter plugin runs for this state, and
// fixes the list of those that do for the rest of the cycle (call it after
// PreFilter).
func (f *Framework) HasFilters(state *CycleState) bool {
	state.filters, state.filtersDone = f.activeFilters(state), true
	return len(state.filters) > 0
}

// RunPostFilterPlugins runs PostFilter plugins until one succeeds.
func (f *Framework) RunPostFilterPlugins(ctx context.Context, state *CycleState, pod *PodInfo, diag *Diagnosis) (*PostFilterResult, *Status) {
	var msgs []string
	for _, p := range f.postFilter {
		r, s := p.PostFilter(ctx, state, pod, diag)
		if s.IsSuccess() {
			return r, nil
		}
		if !s.IsRejected() {
			return nil, s.WithPlugin(p.Name())
		}
		if m := s.Message(); m != "" {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return nil, NewStatus(Unschedulable)
	}
	return nil, NewStatus(Unschedulable, strings.Join(msgs, " "))
}

// RunPreScorePlugins runs PreScore plugins; Skip disables that plugin's
// Score for this pod.
func (f *Framework) RunPreScorePlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) *Status {
	for _, p := range f.preScore {
		s := p.PreScore(ctx, state, pod, nodes)
		if s.IsSkip() {
			if state.skipScore == nil {
				state.skipScore = map[string]bool{}
			}
			state.skipScore[p.Name()] = true
			continue
		}
		if !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunScorePlugins scores every node with every Score plugin (in parallel
// over nodes), normalizes each plugin's scores, applies weights and
// returns the totals, in the order of nodes.
//
// The returned slice is reused by the next call: use it before scoring
// again.
func (f *Framework) RunScorePlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodes []*NodeInfo) ([]NodeScore, *Status) {
	f.scoreMu.Lock()
	if cap(f.totalsBuf) < len(nodes) {
		f.totalsBuf = make([]NodeScore, len(nodes))
	}
	totals := f.totalsBuf[:len(nodes)]
	f.scoreMu.Unlock()
	for i, n := range nodes {
		totals[i] = NodeScore{Name: n.Name()}
	}
	var active []int
	for i, p := range f.score {
		if !state.skipScore[p.Name()] {
			active = append(active, i)
		}
	}
	if len(active) == 0 || len(nodes) == 0 {
		return totals, nil
	}
	// Per-plugin score slices are reused across cycles (the scheduling
	// loop calls this from one goroutine); only totals escape.
	f.scoreMu.Lock()
	defer f.scoreMu.Unlock()
	for len(f.scoreBuf) < len(active) {
		f.scoreBuf = append(f.scoreBuf, nil)
	}
	scores := f.scoreBuf[:len(active)]
	for j := range active {
		if cap(scores[j]) < len(nodes) {
			scores[j] = make([]NodeScore, len(nodes))
		}
		scores[j] = scores[j][:len(nodes)]
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed atomic.Pointer[Status]
	f.par.Until(ctx, len(nodes), func(i int) {
		for j, pi := range active {
			p := f.score[pi]
			v, s := p.Score(ctx, state, pod, nodes[i])
			if !s.IsSuccess() {
				failed.CompareAndSwap(nil, NewStatus(Error, fmt.Sprintf("running %s score: %s", p.Name(), s.Message())).WithPlugin(p.Name()))
				cancel()
				return
			}
			scores[j][i] = NodeScore{Name: totals[i].Name, Score: v}
		}
	})
	if s := failed.Load(); s != nil {
		return nil, s
	}
	for j, pi := range active {
		p := f.score[pi]
		if n, ok := p.(ScoreNormalizer); ok {
			if s := n.NormalizeScore(ctx, state, pod, scores[j]); !s.IsSuccess() {
				return nil, NewStatus(Error, fmt.Sprintf("normalizing %s scores: %s", p.Name(), s.Message())).WithPlugin(p.Name())
			}
		}
		w := f.weights[pi]
		for i := range scores[j] {
			v := scores[j][i].Score
			if v < MinNodeScore || v > MaxNodeScore {
				return nil, NewStatus(Error, fmt.Sprintf("plugin %s scored node %s %d, outside [%d, %d]", p.Name(), totals[i].Name, v, MinNodeScore, MaxNodeScore)).WithPlugin(p.Name())
			}
			totals[i].Score += v * w
		}
	}
	return totals, nil
}

// RunReservePluginsReserve reserves in order; on failure the caller runs
// RunReservePluginsUnreserve.
func (f *Framework) RunReservePluginsReserve(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status {
	for _, p := range f.reserve {
		if s := p.Reserve(ctx, state, pod, nodeName); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunReservePluginsUnreserve undoes reservations in reverse order.
func (f *Framework) RunReservePluginsUnreserve(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) {
	for i := len(f.reserve) - 1; i >= 0; i-- {
		f.reserve[i].Unreserve(ctx, state, pod, nodeName)
	}
}

// RunPermitPlugins runs Permit plugins. When some ask to wait, the pod is
// registered as waiting and Wait is returned; WaitOnPermit then blocks.
func (f *Framework) RunPermitPlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status {
	timeouts := map[string]time.Duration{}
	for _, p := range f.permit {
		s, timeout := p.Permit(ctx, state, pod, nodeName)
		switch {
		case s.IsSuccess():
		case s.IsWait():
			timeouts[p.Name()] = timeout
		case s.IsRejected():
			return s.WithPlugin(p.Name())
		default:
			return NewStatus(Error, fmt.Sprintf("running %s permit: %s", p.Name(), s.Message())).WithPlugin(p.Name())
		}
	}
	if len(timeouts) > 0 {
		f.waiting.add(newWaitingPod(pod.Pod, timeouts))
		return NewStatus(Wait)
	}
	return nil
}

// WaitOnPermit blocks until a waiting pod is allowed by all its Permit
// plugins, rejected, timed out, or ctx ends. Pods not waiting return nil.
func (f *Framework) WaitOnPermit(ctx context.Context, pod *PodInfo) *Status {
	w := f.waiting.get(pod.Pod.UID)
	if w == nil {
		return nil
	}
	defer f.waiting.remove(pod.Pod.UID)
	select {
	case s := <-w.done:
		return s
	case <-ctx.Done():
		w.stop()
		return AsStatus(fmt.Errorf("waiting on permit: %w", ctx.Err()))
	}
}

// RunPreBindPlugins runs PreBind plugins in order.
func (f *Framework) RunPreBindPlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status {
	for _, p := range f.preBind {
		if s := p.PreBind(ctx, state, pod, nodeName); !s.IsSuccess() {
			return s.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunBindPlugins runs Bind plugins until one does not Skip.
func (f *Framework) RunBindPlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) *Status {
	for _, p := range f.bind {
		s := p.Bind(ctx, state, pod, nodeName)
		if s.IsSkip() {
			continue
		}
		return s.WithPlugin(p.Name())
	}
	return AsStatus(errors.New("every bind plugin skipped the pod"))
}

// RunPostBindPlugins informs PostBind plugins.
func (f *Framework) RunPostBindPlugins(ctx context.Context, state *CycleState, pod *PodInfo, nodeName string) {
	for _, p := range f.postBind {
		p.PostBind(ctx, state, pod, nodeName)
	}
}

// NodeLocal reports whether every Filter plugin running in this cycle
// (call after HasFilters) and every Score plugin not skipped at PreScore
// (call after RunPreScorePlugins) is a NodeLocalPlugin, or a
// CycleNodeLocalPlugin that is node-local in this cycle.
func (f *Framework) NodeLocal(state *CycleState, afterPreScore bool) bool {
	for _, p := range state.filters {
		if !nodeLocal(p, state, false) {
			return false
		}
	}
	if !afterPreScore {
		return true
	}
	for _, p := range f.score {
		if state.skipScore[p.Name()] {
			continue
		}
		if !nodeLocal(p, state, true) {
			return false
		}
	}
	return true
}

func nodeLocal(p Plugin, state *CycleState, score bool) bool {
	if _, ok := p.(NodeLocalPlugin); ok {
		return true
	}
	if c, ok := p.(CycleNodeLocalPlugin); ok {
		return c.NodeLocalIn(state, score)
	}
	return false
}

// ActiveScorePlugins returns the indexes of the Score plugins not skipped
// at PreScore, appended to buf.
func (f *Framework) ActiveScorePlugins(state *CycleState, buf []int) []int {
	for i, p := range f.score {
		if !state.skipScore[p.Name()] {
			buf = append(buf, i)
		}
	}
	return buf
}

// ScoreNode writes the raw score of each active Score plugin (indexes from
// ActiveScorePlugins) for node into out[j][pos]. It may be called
// concurrently for different nodes.
func (f *Framework) ScoreNode(ctx context.Context, state *CycleState, pod *PodInfo, node *NodeInfo, active []int, out [][]int64, pos int) *Status {
	for j, pi := range active {
		p := f.score[pi]
		v, s := p.Score(ctx, state, pod, node)
		if !s.IsSuccess() {
			return NewStatus(Error, fmt.Sprintf("running %s score: %s", p.Name(), s.Message())).WithPlugin(p.Name())
		}
		out[j][pos] = v
	}
	return nil
}

// CombineScores normalizes raw scores (raw[j][positions[k]] for the k-th
// of names, per active plugin j) and returns the weighted totals in the
// order of names, as RunScorePlugins does. The returned slice is reused by
// the next call.
func (f *Framework) CombineScores(ctx context.Context, state *CycleState, pod *PodInfo, names []string, positions []int32, active []int, raw [][]int64) ([]NodeScore, *Status) {
	f.scoreMu.Lock()
	defer f.scoreMu.Unlock()
	if cap(f.totalsBuf) < len(names) {
		f.totalsBuf = make([]NodeScore, len(names))
	}
	totals := f.totalsBuf[:len(names)]
	for k, n := range names {
		totals[k] = NodeScore{Name: n}
	}
	if len(f.scoreBuf) == 0 {
		f.scoreBuf = append(f.scoreBuf, nil)
	}
	buf := f.scoreBuf[0]
	if cap(buf) < len(names) {
		buf = make([]NodeScore, len(names))
		f.scoreBuf[0] = buf
	}
	buf = buf[:len(names)]
	for j, pi := range active {
		p := f.score[pi]
		r := raw[j]
		for k, pos := range positions {
			buf[k] = NodeScore{Name: names[k], Score: r[pos]}
		}
		if n, ok := p.(ScoreNormalizer); ok {
			if s := n.NormalizeScore(ctx, state, pod, buf); !s.IsSuccess() {
				return nil, NewStatus(Error, fmt.Sprintf("normalizing %s scores: %s", p.Name(), s.Message())).WithPlugin(p.Name())
			}
		}
		w := f.weights[pi]
		for k := range buf {
			v := buf[k].Score
			if v < MinNodeScore || v > MaxNodeScore {
				return nil, NewStatus(Error, fmt.Sprintf("plugin %s scored node %s %d, outside [%d, %d]", p.Name(), names[k], v, MinNodeScore, MaxNodeScore)).WithPlugin(p.Name())
			}
			totals[k].Score += v * w
		}
	}
	return totals, nil
}

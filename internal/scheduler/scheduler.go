package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/noderesources"
)

// Options are the scheduler's collaborators.
type Options struct {
	Client kubernetes.Interface
	// MembershipClient renews this instance's membership Lease (default
	// Client). Give it its own rate limiter: behind a backlog of bindings
	// and claims in Client's limiter a renewal can wait longer than the
	// Lease lasts, and the other instances then count this one as gone.
	MembershipClient kubernetes.Interface
	// EventClient posts events (default Client). Give it its own rate
	// limiter, as kube-scheduler does with its event client: an event per
	// binding would otherwise take half of Client's requests, and a
	// backlog is then bound at half the client QPS.
	EventClient kubernetes.Interface
	// Dynamic reaches custom resources (PodGroups for gangs); may be nil,
	// then gang members wait as if their group did not exist.
	Dynamic dynamic.Interface
	// Ledger overrides the ledger chosen from the config (a LeaseLedger
	// when multiInstance is enabled, none otherwise).
	Ledger Ledger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Clock      clock.WithTicker
	// Recorder overrides the event recorder built on Client.
	Recorder record.EventRecorder
}

// Scheduler schedules pods of its profiles.
type Scheduler struct {
	cfg         Config
	client      kubernetes.Interface
	eventClient kubernetes.Interface
	ledger      Ledger
	instanceID  string
	log         *slog.Logger
	clock       clock.WithTicker
	metrics     *Metrics
	recorder    record.EventRecorder
	broadcaster record.EventBroadcaster

	profiles map[string]*framework.Framework
	// factory feeds the cache and the queue, and the listers plugins use.
	factory informers.SharedInformerFactory
	// members shares pending pods between instances (nil: this instance
	// takes every pod).
	members *Members
	cache   *Cache
	queue   *Queue
	// nominated are preemptors waiting for their victims to leave.
	nominated *nominator
	// shapes counts the requests of pending pods (framework.PendingSource).
	shapes *pendingShapes
	// reserved: the node of each preemptor's ledger reservation this
	// instance made (under mu).
	reserved map[types.UID]string
	// statusBuf and feasibleBuf are schedulePod's per-node buffers.
	statusBuf   []*framework.Status
	feasibleBuf []*framework.NodeInfo
	positionBuf []int32
	// results are the last node-local evaluation, kept for equivalent pods.
	results  nodeResults
	snapshot *framework.Snapshot
	par      framework.Parallelizer

	mu sync.Mutex
	// pending are the unbound pods of our profiles the informer knows; a
	// failed pod is requeued only while it is still pending.
	pending  map[types.UID]struct{}
	bindings sync.WaitGroup
	// bindSlots bounds the binding cycles talking to the API server at
	// once (claim, PreBind, Bind). Unbounded, a backlog bound at the
	// client's burst puts hundreds of requests in flight, more than one
	// HTTP/2 connection may carry, and the client then opens extra TLS
	// connections (their handshakes took 41% of the CPU in a benchmark).
	bindSlots chan struct{}

	// Shares (multiInstance.shareFraction, see placeInShare): pods this
	// instance placed in its share whose binding the informer has not yet
	// reported, by UID (value: node).
	shareMu       sync.Mutex
	shareInflight map[types.UID]string
	// podRV is the newest pod resourceVersion the pod informer delivered
	// (after the cache took the event).
	podRV atomic.Uint64
}

// ShareOfAnnotation is put on a pod (through its Binding) that an
// instance placed in its share of the node without a ledger claim; its
// value is the instance ID.
const ShareOfAnnotation = "scheduler.keelson.dev/share-of"

// maxBindingCalls is the size of Scheduler.bindSlots: at a few
// milliseconds per request it allows thousands of bindings per second.
const maxBindingCalls = 64

// New builds a scheduler; nothing runs until Start.
func New(cfg Config, opts Options) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Scheduler{
		cfg:         cfg,
		client:      opts.Client,
		eventClient: cmp.Or[kubernetes.Interface](opts.EventClient, opts.Client),
		log:         opts.Logger,
		clock:       opts.Clock,
		metrics:     NewMetrics(opts.Registerer),
		recorder:    opts.Recorder,
		profiles:    map[string]*framework.Framework{},
		cache:       NewCache(opts.Clock),
		snapshot:    framework.NewSnapshot(nil, nil),
		par:         framework.Parallelizer{Workers: cfg.Parallelism},
		pending:     map[types.UID]struct{}{},
		bindSlots:   make(chan struct{}, maxBindingCalls),
		instanceID:  cfg.MultiInstance.InstanceID,
		nominated:   newNominator(),

		shareInflight: map[types.UID]string{},
		shapes:        newPendingShapes(),
		reserved:      map[types.UID]string{},
	}
	if s.instanceID == "" {
		host, _ := os.Hostname()
		s.instanceID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if opts.Client != nil {
		s.factory = informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithTransform(dropManagedFields))
	}
	for _, p := range cfg.Profiles {
		fw, err := framework.New(p, framework.Options{Client: opts.Client, Dynamic: opts.Dynamic, Parallelism: cfg.Parallelism, Informers: s.factory})
		if err != nil {
			return nil, err
		}
		fw.SetNominator(s.nominated)
		fw.SetPending(s.shapes)
		if cfg.MultiInstance.Enabled && cfg.MultiInstance.ReservePreemptions {
			fw.SetPreemptionReserver(s)
		}
		s.profiles[p.SchedulerName] = fw
	}
	s.ledger = opts.Ledger
	if s.ledger == nil && cfg.MultiInstance.Enabled {
		if opts.Client == nil {
			return nil, errors.New("multi-instance scheduling needs a client for its ledger")
		}
		s.ledger = &LeaseLedger{Client: opts.Client, Namespace: cfg.MultiInstance.LedgerNamespace}
	}
	first := s.profiles[cfg.Profiles[0].SchedulerName]
	mi := cfg.MultiInstance
	var owned, stealable func(*v1.Pod) bool
	var ownerOf func(*v1.Pod) string
	if mi.Enabled && mi.Partition && opts.Client != nil {
		names := make([]string, 0, len(cfg.Profiles))
		for _, p := range cfg.Profiles {
			names = append(names, p.SchedulerName)
		}
		s.members = NewMembers(MembersOptions{
			Client: cmp.Or[kubernetes.Interface](opts.MembershipClient, opts.Client), Namespace: mi.LedgerNamespace, Self: s.instanceID, Profiles: names,
			LeaseDuration: mi.MemberLeaseDuration.Duration, Clock: opts.Clock, Logger: opts.Logger,
			ShareFraction: mi.ShareFraction, SeenRV: s.podRV.Load,
			OnChange: func() {
				s.metrics.MemberChanges.Inc()
				s.metrics.Instances.Set(float64(len(s.members.Live())))
				s.queue.Reassign()
			},
		})
		owned, ownerOf = s.members.Owns, s.members.Owner
		// Gang members are not stolen: the held count is per instance, so
		// a gang split between instances would wait for its timeout. Nor
		// are pods with cross-node constraints (see CrossNode).
		stealable = func(p *v1.Pod) bool { return gang.GroupName(p) == "" && !CrossNode(p) }
	}
	s.metrics.Instances.Set(1)
	s.queue = NewQueue(QueueOptions{
		Owned:              owned,
		Stealable:          stealable,
		StealAfter:         mi.StealAfter.Duration,
		OwnerOf:            ownerOf,
		OnSteal:            s.metrics.StolenPods.Inc,
		Clock:              opts.Clock,
		InitialBackoff:     cfg.PodInitialBackoff.Duration,
		MaxBackoff:         cfg.PodMaxBackoff.Duration,
		MaxInUnschedulable: cfg.PodMaxInUnschedulable.Duration,
		Less:               first.QueueSort().Less,
		PreEnqueue: func(pi *framework.PodInfo) *framework.Status {
			if fw := s.profiles[pi.Pod.Spec.SchedulerName]; fw != nil {
				return fw.RunPreEnqueuePlugins(context.Background(), pi)
			}
			return nil
		},
		Events: func(pod *v1.Pod) map[string][]framework.ClusterEvent {
			if fw := s.profiles[pod.Spec.SchedulerName]; fw != nil {
				return fw.PluginEvents()
			}
			return nil
		},
	})
	if s.recorder == nil && opts.Client != nil {
		s.broadcaster = record.NewBroadcaster()
		s.recorder = s.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "keelson-scheduler"})
	}
	if s.recorder == nil {
		s.recorder = &record.FakeRecorder{}
	}
	return s, nil
}

// Cache exposes the cache (tests, simulations).
func (s *Scheduler) Cache() *Cache { return s.cache }

// Queue exposes the queue (tests, simulations).
func (s *Scheduler) Queue() *Queue { return s.queue }

// Start runs informers and the scheduling loop until ctx ends, then waits
// for bindings in flight.
func (s *Scheduler) Start(ctx context.Context) error {
	if s.client == nil {
		return errors.New("scheduler has no client")
	}
	if s.broadcaster != nil {
		sink := newAsyncSink(&typedcorev1.EventSinkImpl{Interface: s.eventClient.CoreV1().Events("")}, s.log)
		s.broadcaster.StartRecordingToSink(sink)
		defer func() {
			s.broadcaster.Shutdown()
			if !sink.close(5 * time.Second) {
				s.log.Warn("events still being posted at exit; left")
			}
		}()
	}
	if s.members != nil {
		// Membership first: the first pods the informer delivers are
		// shared out over the instances already known.
		if err := s.members.Start(ctx); err != nil {
			return err
		}
		s.metrics.Instances.Set(float64(len(s.members.Live())))
	}
	if l, ok := s.ledger.(interface{ Start(context.Context) error }); ok {
		if err := l.Start(ctx); err != nil {
			return err
		}
	}
	factory := s.factory
	// The handlers' own HasSynced, not only the informers' stores: the
	// first scheduling cycle must see every node and bound pod the initial
	// lists returned, or early pods fail with "0/0 nodes are available".
	var regs []toolscache.ResourceEventHandlerRegistration
	reg, err := factory.Core().V1().Nodes().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.OnNodeAdd(o.(*v1.Node)) },
		UpdateFunc: func(_, n any) { s.OnNodeUpdate(n.(*v1.Node)) },
		DeleteFunc: func(o any) {
			if n, ok := tombstone[*v1.Node](o); ok {
				s.OnNodeDelete(n)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	regs = append(regs, reg)
	reg, err = factory.Core().V1().Namespaces().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.OnNamespace(o.(*v1.Namespace), false) },
		UpdateFunc: func(_, n any) { s.OnNamespace(n.(*v1.Namespace), false) },
		DeleteFunc: func(o any) {
			if n, ok := tombstone[*v1.Namespace](o); ok {
				s.OnNamespace(n, true)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching namespaces: %w", err)
	}
	regs = append(regs, reg)
	reg, err = factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.OnPodAdd(o.(*v1.Pod)) },
		UpdateFunc: func(_, n any) { s.OnPodUpdate(n.(*v1.Pod)) },
		DeleteFunc: func(o any) {
			if p, ok := tombstone[*v1.Pod](o); ok {
				s.OnPodDelete(p)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	regs = append(regs, reg)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	synced := make([]toolscache.InformerSynced, len(regs))
	for i, r := range regs {
		synced[i] = r.HasSynced
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("informers did not sync: %w", context.Cause(ctx))
	}
	// Listers plugins registered (services, replica sets, ...).
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync: %w", typ, context.Cause(ctx))
		}
	}
	s.queue.SetStealFloor(s.clock.Now())
	nodes, pods := s.cache.Counts()
	s.log.Info("scheduler started", "instance", s.instanceID, "nodes", nodes, "pods", pods, "profiles", len(s.profiles))
	go s.queue.Run(ctx)
	go s.reportQueue(ctx)
	for ctx.Err() == nil {
		if err := s.ScheduleOne(ctx); err != nil && !errors.Is(err, ErrQueueClosed) && ctx.Err() == nil {
			s.log.Error("scheduling", "err", err)
		}
	}
	s.bindings.Wait()
	if s.members != nil {
		// Every share placement has ended: the membership Lease may go.
		s.members.Release()
	}
	return nil
}

// dropManagedFields empties metadata.managedFields of informer objects
// before they are stored: the scheduler never reads them, and at 50,000
// pods they were a large share of its memory (kube-scheduler drops them
// from pods too).
func dropManagedFields(o any) (any, error) {
	if m, ok := o.(metav1.Object); ok && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return o, nil
}

func tombstone[T any](o any) (T, bool) {
	if t, ok := o.(T); ok {
		return t, true
	}
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		t, ok := d.Obj.(T)
		return t, ok
	}
	var zero T
	return zero, false
}

func (s *Scheduler) reportQueue(ctx context.Context) {
	t := s.clock.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			a, b, u, g := s.queue.Lengths()
			s.metrics.PendingPods.WithLabelValues("active").Set(float64(a))
			s.metrics.PendingPods.WithLabelValues("backoff").Set(float64(b))
			s.metrics.PendingPods.WithLabelValues("unschedulable").Set(float64(u))
			s.metrics.PendingPods.WithLabelValues("gated").Set(float64(g))
			s.metrics.PendingPods.WithLabelValues("foreign").Set(float64(s.queue.Foreign()))
		}
	}
}

// WaitForBindings blocks until every binding cycle started has ended.
func (s *Scheduler) WaitForBindings() { s.bindings.Wait() }

func terminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// OnNodeAdd handles a node informer add.
func (s *Scheduler) OnNodeAdd(n *v1.Node) {
	s.cache.AddNode(n)
	s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventNode, Action: framework.Add})
}

// OnNodeUpdate handles a node informer update. Status-only heartbeats
// (kubelet, kwok) do not wake unschedulable pods.
func (s *Scheduler) OnNodeUpdate(n *v1.Node) {
	old, had := s.cache.NodeInfo(n.Name)
	s.cache.AddNode(n)
	if had && old.Node() != nil && !schedulingRelevantChange(old.Node(), n) {
		return
	}
	s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventNode, Action: framework.Update})
}

func schedulingRelevantChange(a, b *v1.Node) bool {
	if a.Spec.Unschedulable != b.Spec.Unschedulable || len(a.Spec.Taints) != len(b.Spec.Taints) || len(a.Labels) != len(b.Labels) {
		return true
	}
	for i := range a.Spec.Taints {
		if !a.Spec.Taints[i].MatchTaint(&b.Spec.Taints[i]) || a.Spec.Taints[i].Value != b.Spec.Taints[i].Value {
			return true
		}
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return true
		}
	}
	for k, q := range a.Status.Allocatable {
		if bq, ok := b.Status.Allocatable[k]; !ok || !bq.Equal(q) {
			return true
		}
	}
	return len(a.Status.Allocatable) != len(b.Status.Allocatable)
}

// OnNodeDelete handles a node informer delete.
func (s *Scheduler) OnNodeDelete(n *v1.Node) {
	s.cache.RemoveNode(n.Name)
	s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventNode, Action: framework.Delete})
}

// OnNamespace handles namespace adds, updates and deletes.
func (s *Scheduler) OnNamespace(ns *v1.Namespace, deleted bool) {
	action := framework.Update
	if deleted {
		s.cache.RemoveNamespace(ns.Name)
		action = framework.Delete
	} else {
		s.cache.AddNamespace(ns)
	}
	s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventNamespace, Action: action})
}

func (s *Scheduler) ours(p *v1.Pod) bool {
	_, ok := s.profiles[p.Spec.SchedulerName]
	return ok
}

// OnPodAdd handles a pod informer add.
func (s *Scheduler) OnPodAdd(p *v1.Pod) { s.onPod(p, framework.Add) }

// OnPodUpdate handles a pod informer update.
func (s *Scheduler) OnPodUpdate(p *v1.Pod) { s.onPod(p, framework.Update) }

// notePodRV records p's resourceVersion as delivered (events of one
// watch arrive in resourceVersion order).
func (s *Scheduler) notePodRV(p *v1.Pod) {
	rv, err := strconv.ParseUint(p.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	for {
		old := s.podRV.Load()
		if rv <= old || s.podRV.CompareAndSwap(old, rv) {
			return
		}
	}
}

func (s *Scheduler) onPod(p *v1.Pod, action framework.ActionType) {
	defer s.notePodRV(p)
	switch {
	case terminal(p):
		s.OnPodDelete(p)
	case p.Spec.NodeName != "":
		s.mu.Lock()
		delete(s.pending, p.UID)
		s.mu.Unlock()
		s.shapes.remove(p.UID)
		s.queue.Delete(p.UID)
		s.nominated.remove(p.UID)
		if action == framework.Add {
			s.cache.AddPod(p)
		} else {
			s.cache.UpdatePod(p)
		}
		// Counted through the cache from now on (its annotation says
		// whose share it is in).
		s.forgetShare(p.UID)
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventAssignedPod, Action: action})
	case s.ours(p):
		if p.Status.NominatedNodeName != "" {
			s.nominated.observe(p)
		}
		if s.cache.IsAssumed(p.UID) {
			return
		}
		s.mu.Lock()
		_, known := s.pending[p.UID]
		s.pending[p.UID] = struct{}{}
		s.mu.Unlock()
		s.shapes.set(p.UID, podShape(p))
		if known && s.queue.Has(p.UID) {
			s.queue.Update(p)
		} else if !known {
			s.queue.Add(p)
			if gang.GroupName(p) != "" {
				// A new member may complete a gang whose members were
				// released.
				s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventUnscheduledPod, Action: framework.Add})
			}
		}
	}
}

// OnPodDelete handles a pod informer delete (and terminal pods).
func (s *Scheduler) OnPodDelete(p *v1.Pod) {
	defer s.notePodRV(p)
	defer s.forgetShare(p.UID)
	s.mu.Lock()
	delete(s.pending, p.UID)
	s.mu.Unlock()
	s.shapes.remove(p.UID)
	s.queue.Delete(p.UID)
	s.nominated.remove(p.UID)
	if preemptor, last := s.nominated.victimGone(p.UID); last {
		// The preemptor's room is free now: retry it at once rather than
		// after a backoff or the next unrelated event.
		s.cache.RemovePod(p)
		s.queue.Activate(preemptor)
	}
	if fw := s.profiles[p.Spec.SchedulerName]; fw != nil {
		if w := fw.GetWaitingPod(p.UID); w != nil {
			w.Reject("", "pod deleted")
		}
	}
	if p.Spec.NodeName != "" || s.cache.IsAssumed(p.UID) {
		s.cache.RemovePod(p)
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventAssignedPod, Action: framework.Delete})
		return
	}
	s.cache.RemovePod(p)
}

// ScheduleOne pops one pod and runs its scheduling cycle; the binding
// cycle continues in a goroutine.
func (s *Scheduler) ScheduleOne(ctx context.Context) error {
	qpi, cycle, err := s.queue.Pop(ctx)
	if err != nil {
		return err
	}
	pod := qpi.Pod
	fw := s.profiles[pod.Spec.SchedulerName]
	if fw == nil || pod.DeletionTimestamp != nil || s.cache.IsAssumed(pod.UID) {
		return nil
	}
	log := s.log.With("pod", pod.Namespace+"/"+pod.Name)
	start := s.clock.Now()
	s.cache.UpdateSnapshot(s.snapshot)
	fw.SetSnapshot(s.snapshot)
	state := framework.NewCycleState()

	host, preempted, err := s.schedulePod(ctx, fw, state, qpi.PodInfo)
	if err != nil {
		result := "error"
		var fe *framework.FitError
		if errors.As(err, &fe) {
			result = "unschedulable"
		}
		s.observeAttempt(fw, result, start)
		s.fail(ctx, fw, qpi, cycle, err)
		if _, left := s.nominated.waiting(pod.UID, s.cache.Has); preempted && !left {
			// Its victims went while it was being decided (their delete
			// events may already have been handled): retry now.
			s.queue.Activate(pod.UID)
		}
		log.Debug("pod unschedulable", "err", err)
		return nil
	}

	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = host
	api := *qpi.PodInfo
	api.Pod = assumed
	if err := s.cache.AssumePod(&api, host); err != nil {
		s.observeAttempt(fw, "error", start)
		s.fail(ctx, fw, qpi, cycle, err)
		return nil
	}
	// Its room is taken by the assumed pod now, not reserved twice; nor
	// is it counted among the pods still waiting for room.
	s.nominated.remove(pod.UID)
	s.shapes.assume(pod.UID, true)
	s.placedReservation(qpi.PodInfo, host)
	if st := fw.RunReservePluginsReserve(ctx, state, &api, host); !st.IsSuccess() {
		fw.RunReservePluginsUnreserve(ctx, state, &api, host)
		s.cache.ForgetPod(pod.UID)
		s.shapes.assume(pod.UID, false)
		s.observeAttempt(fw, "error", start)
		s.fail(ctx, fw, qpi, cycle, st.Err())
		return nil
	}
	if st := fw.RunPermitPlugins(ctx, state, &api, host); !st.IsSuccess() && !st.IsWait() {
		fw.RunReservePluginsUnreserve(ctx, state, &api, host)
		s.cache.ForgetPod(pod.UID)
		s.shapes.assume(pod.UID, false)
		s.observeAttempt(fw, "unschedulable", start)
		s.fail(ctx, fw, qpi, cycle, statusError(st))
		return nil
	}
	s.observeAttempt(fw, "scheduled", start)
	s.bindings.Add(1)
	go s.bindingCycle(ctx, fw, state, qpi, &api, host, cycle)
	return nil
}

func (s *Scheduler) observeAttempt(fw *framework.Framework, result string, start time.Time) {
	s.metrics.Attempts.WithLabelValues(result, fw.ProfileName()).Inc()
	s.metrics.AttemptDuration.WithLabelValues(result, fw.ProfileName()).Observe(s.clock.Since(start).Seconds())
}

// schedulePod filters all nodes, scores the feasible ones and picks one.
// preempted is true when it found no node but evicted pods to make room.
func (s *Scheduler) schedulePod(ctx context.Context, fw *framework.Framework, state *framework.CycleState, pod *framework.PodInfo) (host string, preempted bool, err error) {
	all := s.snapshot.NodeInfos
	fitErr := &framework.FitError{Pod: pod.Pod, NumAllNodes: len(all), Diagnosis: framework.Diagnosis{NodeToStatus: map[string]*framework.Status{}}}
	if len(all) == 0 {
		fitErr.Diagnosis.PreFilterMsg = "no nodes available to schedule pods"
		return "", false, fitErr
	}
	pf, st := fw.RunPreFilterPlugins(ctx, state, pod)
	if !st.IsSuccess() {
		if !st.IsRejected() {
			return "", false, fmt.Errorf("prefilter %s: %w", st.Plugin(), st.Err())
		}
		fitErr.Diagnosis.PreFilterMsg = st.Message()
		fitErr.Diagnosis.AddPlugin(st.Plugin())
		return "", false, fitErr
	}
	// Room reserved for preemptors (nominated pods of this priority or
	// higher) counts as used on their nodes.
	prio := podPriority(pod.Pod)
	nominatedOn := s.nominated.nodes()
	filter := func(ni *framework.NodeInfo) *framework.Status {
		if _, ok := nominatedOn[ni.Name()]; ok {
			if others := s.nominated.NominatedPods(ni.Name(), prio, pod.UID()); len(others) > 0 {
				ni = ni.Clone()
				for _, o := range others {
					ni.AddPodInfo(o)
				}
			}
		}
		return fw.RunFilterPlugins(ctx, state, pod, ni)
	}
	// A preemptor whose room is free goes to its nominated node without
	// evaluating the others (as kube-scheduler does).
	node, victimsLeft := s.nominated.waiting(pod.UID(), s.cache.Has)
	if node != "" && !victimsLeft {
		if ni, ok := s.snapshot.Get(node); ok && (pf == nil || pf.NodeNames == nil || hasKey(pf.NodeNames, node)) && filter(ni).IsSuccess() {
			return node, false, nil
		}
	}
	candidates := all
	if pf != nil && pf.NodeNames != nil {
		candidates = make([]*framework.NodeInfo, 0, len(pf.NodeNames))
		for _, n := range all {
			if _, ok := pf.NodeNames[n.Name()]; ok {
				candidates = append(candidates, n)
			}
		}
		if len(candidates) == 0 {
			fitErr.Diagnosis.PreFilterMsg = "node(s) didn't satisfy plugin(s) prefilter result"
			return "", false, fitErr
		}
	}
	// Per-cycle buffers are reused (one scheduling cycle at a time).
	if cap(s.statusBuf) < len(candidates) {
		s.statusBuf = make([]*framework.Status, len(candidates))
		s.feasibleBuf = make([]*framework.NodeInfo, 0, len(candidates))
	}
	hasFilters := fw.HasFilters(state)
	// With only node-local plugins, every node, and no room reserved for
	// preemptors, the verdicts and scores of the last equivalent pod are
	// kept for the nodes that did not change (see nodeResults).
	local := len(candidates) == len(all) && len(nominatedOn) == 0 && fw.NodeLocal(state, false)
	var statuses []*framework.Status
	if local {
		s.results.prepare(fw, s.snapshot, pod)
		var err error
		if statuses, err = s.results.filter(ctx, s.par, s.snapshot, state, pod, hasFilters); err != nil {
			return "", false, err
		}
		defer func() {
			// An error other than "fits nowhere" may have left partial
			// results.
			var fe *framework.FitError
			if err != nil && !errors.As(err, &fe) {
				s.results.valid = false
			}
		}()
	} else {
		statuses = s.statusBuf[:len(candidates)]
		clear(statuses)
		if hasFilters {
			s.par.Until(ctx, len(candidates), func(i int) {
				statuses[i] = filter(candidates[i])
			})
		}
	}
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	feasible := s.feasibleBuf[:0]
	positions := s.positionBuf[:0]
	defer func() { clear(s.feasibleBuf[:cap(s.feasibleBuf)]) }()
	for i, st := range statuses {
		switch {
		case st.IsSuccess():
			feasible = append(feasible, candidates[i])
			if local {
				positions = append(positions, int32(i))
			}
		case st.IsRejected():
		default:
			return "", false, fmt.Errorf("filter %s on node %s: %w", st.Plugin(), candidates[i].Name(), st.Err())
		}
	}
	s.positionBuf = positions
	if len(feasible) == 0 {
		// The diagnosis is only built when it is needed.
		for i, st := range statuses {
			fitErr.Diagnosis.NodeToStatus[candidates[i].Name()] = st
			fitErr.Diagnosis.AddPlugin(st.Plugin())
		}
		if victimsLeft {
			// It already preempted: wait for those victims to go rather
			// than evict more pods somewhere else.
			fitErr.Diagnosis.PostFilterMsg = fmt.Sprintf("waiting for preempted pods to leave node %s.", node)
			return "", false, fitErr
		}
		r, pst := fw.RunPostFilterPlugins(ctx, state, pod, &fitErr.Diagnosis)
		if pst.IsRejected() && pst.Message() != "" {
			fitErr.Diagnosis.PostFilterMsg = pst.Message()
		}
		if pst.IsSuccess() && r != nil && r.NominatedNodeName != "" {
			s.nominated.add(pod, r.NominatedNodeName, r.Victims)
			preempted = len(r.Victims) > 0
		}
		return "", preempted, fitErr
	}
	if len(feasible) == 1 {
		return feasible[0].Name(), false, nil
	}
	if st := fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
		return "", false, fmt.Errorf("prescore %s: %w", st.Plugin(), st.Err())
	}
	if local {
		if totals, st, ok := s.results.score(ctx, s.par, state, pod, feasible, positions); ok {
			if !st.IsSuccess() {
				return "", false, fmt.Errorf("score %s: %w", st.Plugin(), st.Err())
			}
			return selectHost(totals), false, nil
		}
	}
	scores, st := fw.RunScorePlugins(ctx, state, pod, feasible)
	if !st.IsSuccess() {
		return "", false, fmt.Errorf("score %s: %w", st.Plugin(), st.Err())
	}
	return selectHost(scores), false, nil
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// selectHost returns a highest-scoring node, ties broken uniformly at
// random so that equal nodes share the load.
func selectHost(scores []framework.NodeScore) string {
	best, ties := 0, 1
	for i := 1; i < len(scores); i++ {
		switch {
		case scores[i].Score > scores[best].Score:
			best, ties = i, 1
		case scores[i].Score == scores[best].Score:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return scores[best].Name
}

func (s *Scheduler) bindingCycle(ctx context.Context, fw *framework.Framework, state *framework.CycleState, qpi *framework.QueuedPodInfo, pod *framework.PodInfo, host string, cycle int64) {
	defer s.bindings.Done()
	start := s.clock.Now()
	claimed, shared := false, false
	abort := func(err error, requeueNow bool) {
		if shared {
			s.forgetShare(pod.UID())
		}
		if claimed {
			if rerr := s.ledger.Release(context.WithoutCancel(ctx), host, pod.UID(), s.instanceID); rerr != nil {
				// The entry stays until another claim on the node prunes
				// it (the pod is then bound elsewhere, deleted, or old
				// enough to be looked up); until then it only makes the
				// node look fuller than it is.
				s.log.Warn("releasing claim", "pod", pod.Pod.Namespace+"/"+pod.Pod.Name, "node", host, "err", rerr)
			}
		}
		fw.RunReservePluginsUnreserve(ctx, state, pod, host)
		s.cache.ForgetPod(pod.UID())
		s.shapes.assume(pod.UID(), false)
		// The room this pod held is free again: pods waiting for room
		// (or for a gang's members to leave) may fit now.
		s.queue.OnEvent(framework.ClusterEvent{Resource: framework.EventAssignedPod, Action: framework.Delete})
		if requeueNow {
			// Lost a race to another instance: back off quietly (no
			// event, no condition) and retry on fresher state.
			s.mu.Lock()
			_, pending := s.pending[pod.UID()]
			s.mu.Unlock()
			if pending {
				qpi.UnschedulablePlugins = nil
				s.queue.AddUnschedulable(qpi, cycle, false)
			}
			return
		}
		s.fail(ctx, fw, qpi, cycle, err)
	}
	if st := fw.WaitOnPermit(ctx, pod); !st.IsSuccess() {
		abort(statusError(st), false)
		return
	}
	// Taken after Permit: gang members wait there for each other, and
	// must not hold a slot meanwhile.
	select {
	case s.bindSlots <- struct{}{}:
	case <-ctx.Done():
		abort(ctx.Err(), false)
		return
	}
	defer func() { <-s.bindSlots }()
	if s.ledger != nil && s.placeInShare(state, pod, host) {
		shared = true
		s.metrics.SharePlaced.Inc()
	} else if s.ledger != nil {
		if err := s.claim(ctx, pod, host); err != nil {
			if errors.Is(err, ErrClaimConflict) {
				s.metrics.ClaimConflicts.Inc()
				s.log.Debug("claim lost, retrying pod", "pod", pod.Pod.Namespace+"/"+pod.Pod.Name, "node", host, "err", err)
				abort(err, true)
				return
			}
			abort(err, false)
			return
		}
		claimed = true
	}
	if st := fw.RunPreBindPlugins(ctx, state, pod, host); !st.IsSuccess() {
		abort(st.Err(), false)
		return
	}
	if st := fw.RunBindPlugins(ctx, state, pod, host); !st.IsSuccess() {
		if err := st.Err(); apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Another instance bound the pod first ("already assigned"),
			// or it was deleted: nothing to report on the pod, whose
			// PodScheduled condition the winning binding already set.
			if apierrors.IsConflict(err) {
				s.metrics.BindConflicts.Inc()
			}
			s.log.Debug("binding lost", "pod", pod.Pod.Namespace+"/"+pod.Pod.Name, "node", host, "err", err)
			abort(err, true)
			return
		}
		abort(st.Err(), false)
		return
	}
	s.cache.FinishBinding(pod.UID())
	fw.RunPostBindPlugins(ctx, state, pod, host)
	s.metrics.BindDuration.Observe(s.clock.Since(start).Seconds())
	s.metrics.E2EDuration.WithLabelValues(attemptsLabel(qpi.Attempts)).Observe(s.clock.Since(qpi.InitialAttemptTimestamp).Seconds())
	s.recorder.Eventf(qpi.Pod, v1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Pod.Namespace, pod.Pod.Name, host)
}

func attemptsLabel(n int) string {
	if n >= 16 {
		return "16+"
	}
	return strconv.Itoa(n)
}

// claim records pod on host in the ledger after checking, against the
// ledger's entries plus everything this instance's cache holds for the
// node, that the pod still fits there.
func (s *Scheduler) claim(ctx context.Context, pod *framework.PodInfo, host string) error {
	return s.ledgerClaim(ctx, host, s.claimEntry(pod), func(entries []ClaimEntry) ([]types.UID, error) {
		return s.checkClaim(ctx, pod, host, entries, nil)
	})
}

// ledgerClaim runs one ledger claim (a binding's or a preemptor's
// reservation) registered with the membership: until it ends, share
// holders seen from now on are not published as reserved (see
// Members.BeginClaim).
func (s *Scheduler) ledgerClaim(ctx context.Context, node string, entry ClaimEntry, check CheckFunc) error {
	if s.members != nil {
		v := s.members.BeginClaim()
		defer s.members.EndClaim(v)
	}
	return s.ledger.Claim(ctx, node, entry, check)
}

// ReserveForPreemptor implements framework.PreemptionReserver: before a
// preemptor's victims are evicted, its room on node is claimed in the
// ledger like a binding, checked against the node without the victims.
// Other instances then count it in their claims on the node (they may see
// the victims leave before they see the nomination), and two preemptors
// cannot both count on the same victims: the second one's check fails and
// it evicts nothing. The preemptor's own claim when it binds there
// replaces the entry; an entry for a pod bound elsewhere or deleted is
// pruned like any other, and this instance releases the one it made when
// the pod is placed on another node or reserves on another node. A write
// that fails for another reason than the check leaves preemption as it
// was without a reservation.
func (s *Scheduler) ReserveForPreemptor(ctx context.Context, pod *framework.PodInfo, node string, victims []*framework.PodInfo) error {
	if s.ledger == nil {
		return nil
	}
	without := make(map[types.UID]bool, len(victims))
	for _, v := range victims {
		without[v.UID()] = true
	}
	err := s.ledgerClaim(ctx, node, s.claimEntry(pod), func(entries []ClaimEntry) ([]types.UID, error) {
		return s.checkClaim(ctx, pod, node, entries, without)
	})
	switch {
	case errors.Is(err, ErrClaimConflict):
		return fmt.Errorf("reserving room for %s/%s on %s: %w: %w", pod.Pod.Namespace, pod.Pod.Name, node, framework.ErrRoomReserved, err)
	case err != nil:
		s.log.Warn("reserving room for preemptor", "pod", pod.Pod.Namespace+"/"+pod.Pod.Name, "node", node, "err", err)
		return nil
	}
	s.mu.Lock()
	prev := s.reserved[pod.UID()]
	s.reserved[pod.UID()] = node
	s.mu.Unlock()
	if prev != "" && prev != node {
		s.releaseReservation(pod, prev)
	}
	return nil
}

// placedReservation forgets pod's reservation once it is placed on host,
// releasing it when it was made on another node.
func (s *Scheduler) placedReservation(pod *framework.PodInfo, host string) {
	s.mu.Lock()
	prev, ok := s.reserved[pod.UID()]
	delete(s.reserved, pod.UID())
	s.mu.Unlock()
	if ok && prev != host {
		s.releaseReservation(pod, prev)
	}
}

// releaseReservation removes this instance's entry for pod on node in the
// background (a release that fails leaves an entry others prune once the
// pod is bound).
func (s *Scheduler) releaseReservation(pod *framework.PodInfo, node string) {
	uid, name := pod.UID(), pod.Pod.Namespace+"/"+pod.Pod.Name
	s.bindings.Add(1)
	go func() {
		defer s.bindings.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.ledger.Release(ctx, node, uid, s.instanceID); err != nil {
			s.log.Warn("releasing preemptor's reservation", "pod", name, "node", node, "err", err)
		}
	}()
}

func (s *Scheduler) claimEntry(pod *framework.PodInfo) ClaimEntry {
	r := pod.Requests
	entry := ClaimEntry{
		UID: pod.UID(), Pod: pod.Pod.Namespace + "/" + pod.Pod.Name,
		MilliCPU: r.MilliCPU, Memory: r.Memory, EphemeralStorage: r.EphemeralStorage,
		At: s.clock.Now().Unix(), By: s.instanceID,
	}
	for k, v := range r.Scalar {
		if entry.Scalar == nil {
			entry.Scalar = map[string]int64{}
		}
		entry.Scalar[string(k)] = v
	}
	for _, p := range pod.HostPorts {
		entry.Ports = append(entry.Ports, p.String())
	}
	return entry
}

// claimVerifyAge is the age after which a ledger entry for a pod this
// instance's cache does not hold is looked up in the API server instead of
// being counted: by then the informer would have reported the pod bound
// had its binding succeeded, so the entry is most likely left over (an
// instance crashed or failed to release it, or the pod was deleted before
// this instance started).
const claimVerifyAge = 30 * time.Second

func (s *Scheduler) checkClaim(ctx context.Context, pod *framework.PodInfo, host string, entries []ClaimEntry, without map[types.UID]bool) ([]types.UID, error) {
	ni, ok := s.cache.NodeInfo(host)
	if !ok {
		return nil, fmt.Errorf("node %s is gone: %w", host, ErrClaimConflict)
	}
	// The cache already holds this pod (assumed); take it out, then add
	// every claim the cache does not know about. Pods in without (a
	// preemptor's victims) are not counted, in the cache or the ledger.
	ni.RemovePod(pod.UID())
	for uid := range without {
		ni.RemovePod(uid)
	}
	used := ni.Requested.Clone()
	count := len(ni.Pods)
	ports := append([]framework.HostPort(nil), ni.UsedPorts...)
	inCache := make(map[types.UID]bool, len(ni.Pods))
	for _, p := range ni.Pods {
		inCache[p.UID()] = true
	}
	var prune []types.UID
	now := s.clock.Now()
	for _, e := range entries {
		// Entries of other instances for this same pod are not counted:
		// only one binding of the pod can succeed, and it is counted
		// once, below, as the pod being placed.
		if e.UID == pod.UID() || inCache[e.UID] || without[e.UID] {
			continue
		}
		if s.cache.recentlyDeleted(e.UID) {
			prune = append(prune, e.UID)
			continue
		}
		if n, ok := s.cache.BoundNode(e.UID); ok && n != host {
			prune = append(prune, e.UID)
			continue
		}
		if now.Sub(time.Unix(e.At, 0)) > claimVerifyAge && s.staleClaim(ctx, e, host) {
			prune = append(prune, e.UID)
			continue
		}
		addClaimed(&used, e)
		count++
		for _, p := range e.Ports {
			if hp, ok := parseHostPort(p); ok {
				ports = append(ports, hp)
			}
		}
	}
	s.shareMu.Lock()
	s.reserveShares(ni, &used, &count, "")
	s.shareMu.Unlock()
	if bad := noderesources.Fits(pod, &ni.Allocatable, &used, count, nil); len(bad) > 0 {
		reasons := make([]string, len(bad))
		for i, b := range bad {
			reasons[i] = b.Reason()
		}
		return nil, fmt.Errorf("%s on %s: %w", strings.Join(reasons, ", "), host, ErrClaimConflict)
	}
	for _, w := range pod.HostPorts {
		for _, u := range ports {
			if w.Conflicts(u) {
				return nil, fmt.Errorf("host port %s taken on %s: %w", w, host, ErrClaimConflict)
			}
		}
	}
	return prune, nil
}

// staleClaim reports whether the API server says e's pod no longer needs
// room on host: it is gone (or replaced under its name), finished, or bound
// to another node. When in doubt (the read fails) the entry is kept.
func (s *Scheduler) staleClaim(ctx context.Context, e ClaimEntry, host string) bool {
	ns, name, ok := strings.Cut(e.Pod, "/")
	if !ok || s.client == nil {
		return false
	}
	p, err := s.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true
	case err != nil:
		return false
	}
	return p.UID != e.UID || terminal(p) || (p.Spec.NodeName != "" && p.Spec.NodeName != host)
}

func parseHostPort(s string) (framework.HostPort, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return framework.HostPort{}, false
	}
	port, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil {
		return framework.HostPort{}, false
	}
	return framework.HostPort{Protocol: v1.Protocol(parts[0]), IP: parts[1], Port: int32(port)}, true
}

// fail records a failed attempt: requeue, event, PodScheduled condition.
func (s *Scheduler) fail(ctx context.Context, fw *framework.Framework, qpi *framework.QueuedPodInfo, cycle int64, err error) {
	pod := qpi.Pod
	reason := "SchedulerError"
	rejected := false
	var fe *framework.FitError
	var re *rejection
	switch {
	case errors.As(err, &fe):
		reason = v1.PodReasonUnschedulable
		rejected = true
		qpi.UnschedulablePlugins = fe.Diagnosis.UnschedulablePlugins
	case errors.As(err, &re):
		reason = v1.PodReasonUnschedulable
		rejected = true
		qpi.UnschedulablePlugins = map[string]struct{}{re.plugin: {}}
	default:
		qpi.UnschedulablePlugins = nil
	}
	s.mu.Lock()
	_, pending := s.pending[pod.UID]
	s.mu.Unlock()
	if !pending {
		return
	}
	s.queue.AddUnschedulable(qpi, cycle, rejected)
	msg := err.Error()
	s.recorder.Eventf(pod, v1.EventTypeWarning, "FailedScheduling", "%s", msg)
	if s.client == nil {
		return
	}
	if c := podScheduledCondition(pod); c != nil && c.Status == v1.ConditionFalse && c.Reason == reason && c.Message == msg {
		return
	}
	if perr := s.patchCondition(ctx, pod, reason, msg); perr != nil {
		s.log.Warn("updating PodScheduled condition", "pod", pod.Namespace+"/"+pod.Name, "err", perr)
	}
}

// rejection is a pod turned away after its scheduling cycle found a node
// (at Permit, or while waiting there, e.g. a gang released): the pod is
// unschedulable, not failed, and waits for an event its plugin registered.
type rejection struct {
	plugin, msg string
}

func (r *rejection) Error() string { return r.msg }

// statusError turns a rejecting status into a *rejection and any other
// into its error.
func statusError(st *framework.Status) error {
	if st.IsRejected() {
		return &rejection{plugin: st.Plugin(), msg: st.Message()}
	}
	return st.Err()
}

func podScheduledCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func (s *Scheduler) patchCondition(ctx context.Context, pod *v1.Pod, reason, msg string) error {
	patch := map[string]any{"status": map[string]any{"conditions": []map[string]any{{
		"type": string(v1.PodScheduled), "status": string(v1.ConditionFalse),
		"reason": reason, "message": msg,
		"lastTransitionTime": metav1.NewTime(s.clock.Now()).Rfc3339Copy(),
	}}}}
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding condition patch: %w", err)
	}
	_, err = s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patching pod status: %w", err)
	}
	return nil
}

// placeInShare decides whether pod may be bound on host without a ledger
// claim, in this instance's share of the node (multiInstance.
// shareFraction), and if so records it and asks the binder to mark the
// pod as placed in this instance's share. Safety: every instance's claims
// leave free the unused part of each live instance's share (see
// reserveShares), and this instance only places pods in its share once
// every other live member publishes that its claims do so
// (Members.ShareReady). So that pods no instance's share accounts for
// (bound earlier, by other schedulers, or in a departed instance's share)
// cannot be overcommitted by several shares at once, the node must also
// hold the pod with the other instances' unused shares counted full.
// Pods with host ports always claim.
func (s *Scheduler) placeInShare(state *framework.CycleState, pod *framework.PodInfo, host string) bool {
	f := s.cfg.MultiInstance.ShareFraction
	if f <= 0 || s.members == nil || len(pod.HostPorts) > 0 || !s.members.ShareReady() {
		return false
	}
	// Read before taking shareMu: a ledger may call checkClaim (which
	// takes it) while holding its own lock.
	var known []ClaimEntry
	if kl, ok := s.ledger.(knownLedger); ok {
		known = kl.KnownEntries(host)
	}
	s.shareMu.Lock()
	defer s.shareMu.Unlock()
	ni, ok := s.cache.NodeInfo(host)
	if !ok {
		return false
	}
	ni.RemovePod(pod.UID())
	own, n := s.shareUse(ni, s.instanceID)
	limit := shareCap(&ni.Allocatable, f)
	if len(noderesources.Fits(pod, &limit, &own, n, nil)) > 0 {
		return false
	}
	used := ni.Requested.Clone()
	count := len(ni.Pods)
	if len(known) > 0 {
		inCache := make(map[types.UID]bool, len(ni.Pods))
		for _, p := range ni.Pods {
			inCache[p.UID()] = true
		}
		for _, e := range known {
			if e.UID == pod.UID() || inCache[e.UID] || s.cache.recentlyDeleted(e.UID) {
				continue
			}
			if bn, ok := s.cache.BoundNode(e.UID); ok && bn != host {
				continue
			}
			addClaimed(&used, e)
			count++
		}
	}
	s.reserveShares(ni, &used, &count, s.instanceID)
	if len(noderesources.Fits(pod, &ni.Allocatable, &used, count, nil)) > 0 {
		return false
	}
	s.shareInflight[pod.UID()] = host
	state.Write(framework.BindingAnnotationsKey, framework.BindingAnnotations{ShareOfAnnotation: s.instanceID})
	return true
}

// forgetShare drops uid from this instance's share placements in flight
// (bound and seen by the informer, deleted, or its binding failed).
func (s *Scheduler) forgetShare(uid types.UID) {
	s.shareMu.Lock()
	delete(s.shareInflight, uid)
	s.shareMu.Unlock()
}

// shareCap is fraction f of alloc, per resource and pod count, rounded
// down.
func shareCap(alloc *framework.Resource, f float64) framework.Resource {
	part := func(x int64) int64 { return int64(f * float64(x)) }
	out := framework.Resource{
		MilliCPU: part(alloc.MilliCPU), Memory: part(alloc.Memory), EphemeralStorage: part(alloc.EphemeralStorage),
		AllowedPodNumber: part(alloc.AllowedPodNumber),
	}
	for k, v := range alloc.Scalar {
		out.AddScalar(k, part(v))
	}
	return out
}

// shareUse sums the requests and counts the pods on ni placed in
// instance id's share: those whose binding says so, and this instance's
// own share placements the informer has not reported yet. s.shareMu is
// held.
func (s *Scheduler) shareUse(ni *framework.NodeInfo, id string) (framework.Resource, int) {
	var used framework.Resource
	n := 0
	for _, p := range ni.Pods {
		mine := p.Pod.Annotations[ShareOfAnnotation] == id
		if !mine && id == s.instanceID {
			_, mine = s.shareInflight[p.UID()]
		}
		if mine {
			used.AddResource(&p.Requests)
			n++
		}
	}
	return used, n
}

// reserveShares adds to used and count the unused part of the share of
// every share holder but skip on ni's node: what each may still place
// there without a claim, whatever this instance has seen of it so far.
// s.shareMu is held.
func (s *Scheduler) reserveShares(ni *framework.NodeInfo, used *framework.Resource, count *int, skip string) {
	if s.members == nil {
		return
	}
	for _, h := range s.members.ShareHolders() {
		if h.ID == skip {
			continue
		}
		limit := shareCap(&ni.Allocatable, h.Fraction)
		u, n := s.shareUse(ni, h.ID)
		used.MilliCPU += max(0, limit.MilliCPU-u.MilliCPU)
		used.Memory += max(0, limit.Memory-u.Memory)
		used.EphemeralStorage += max(0, limit.EphemeralStorage-u.EphemeralStorage)
		for k, v := range limit.Scalar {
			used.AddScalar(k, max(0, v-u.Scalar[k]))
		}
		*count += int(max(0, limit.AllowedPodNumber-int64(n)))
	}
}

// addClaimed adds a ledger entry's requests to used.
func addClaimed(used *framework.Resource, e ClaimEntry) {
	used.MilliCPU += e.MilliCPU
	used.Memory += e.Memory
	used.EphemeralStorage += e.EphemeralStorage
	for k, v := range e.Scalar {
		used.AddScalar(v1.ResourceName(k), v)
	}
}

package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/override"
	"github.com/keelson-dev/keelson/internal/federation/placement"
	"github.com/keelson-dev/keelson/internal/federation/render"
)

// objectKey names one host object.
type objectKey struct {
	GVR       schema.GroupVersionResource
	Namespace string
	Name      string
}

func (k objectKey) String() string {
	if k.Namespace == "" {
		return k.GVR.Resource + "/" + k.Name
	}
	return k.GVR.Resource + "/" + k.Namespace + "/" + k.Name
}

// objState is what the controller remembers about a propagated object.
type objState struct {
	// hashes: cluster → hash last applied (or found) there.
	hashes map[string]string
	// evicted clusters (failover) that still hold a copy until the new
	// ones are up, or that must not get it back (no rebalance).
	evicted map[string]bool
	// deps this object made follow it.
	deps []objectKey
	// memberRV: cluster → resourceVersion of this process's last write
	// there; hostRVs: those of its last writes to the host object. Watch
	// events carrying them are this process's own writes coming back and
	// need no reconcile.
	memberRV map[string]string
	hostRVs  []string
	// checkedRV: cluster → resourceVersion of the member copy last checked
	// for drift (see drift.go).
	checkedRV map[string]string
	// division: cluster → replicas last applied there by capacity
	// division (see keepDivision).
	division map[string]int32
}

// wroteHost remembers the resourceVersion of a write to the host object.
func (s *objState) wroteHost(rv string) {
	if len(s.hostRVs) >= 4 {
		s.hostRVs = slices.Delete(s.hostRVs, 0, 1)
	}
	s.hostRVs = append(s.hostRVs, rv)
}

// Controller is the federation control plane.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	clock  clock.PassiveClock
	host   dynamic.Interface
	hostRC rest.Interface // raw JSON client for host lists (hostListWatch)
	kube   kubernetes.Interface
	mapper meta.ResettableRESTMapper
	sched  *placement.Scheduler
	queue  workqueue.TypedRateLimitingInterface[objectKey]
	m      *metrics

	ctx context.Context

	clusters, pps, cpps, ops, cops cache.SharedIndexInformer
	secrets                        corev1listers.SecretLister

	clusterView  *view[clusterSet]
	policyView   *view[[]policy]
	overrideView *view[[]namespacedOverride]
	bg           *backgroundSet

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	members   map[string]*member
	state     map[objectKey]*objState
	depOwners map[objectKey]map[objectKey]bool
	queuedAt  map[objectKey]time.Time
	// parked bulk keys wait for member caches (see park).
	parked    map[objectKey]string // → host resourceVersion
	unparking bool
}

// New builds a Controller; Start runs it.
func New(cfg Config) (*Controller, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid federation config: %w", err)
	}
	hostCfg := rest.CopyConfig(cfg.Host)
	hostCfg.QPS, hostCfg.Burst = cfg.HostQPS, cfg.HostBurst
	host, err := dynamic.NewForConfig(hostCfg)
	if err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(hostCfg)
	if err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	hostRC, err := rest.UnversionedRESTClientFor(dynamic.ConfigFor(hostCfg))
	if err != nil {
		return nil, fmt.Errorf("host client: %w", err)
	}
	sched, err := placement.New(cfg.Placement)
	if err != nil {
		return nil, err
	}
	bg := newBackgroundSet()
	fifo := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[objectKey]{Name: "federation", Queue: &priorityFIFO{bg: bg}})
	delaying := workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[objectKey]{Name: "federation", Queue: fifo})
	c := &Controller{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, host: host, hostRC: hostRC, kube: kube, sched: sched, bg: bg,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery())),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[objectKey](),
			workqueue.TypedRateLimitingQueueConfig[objectKey]{Name: "federation", DelayingQueue: delaying}),
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		members:   map[string]*member{},
		state:     map[objectKey]*objState{},
		depOwners: map[objectKey]map[objectKey]bool{},
		queuedAt:  map[objectKey]time.Time{},
		parked:    map[objectKey]string{},
	}
	c.m = newMetrics(cfg.Registerer, c.waiting)
	return c, nil
}

// Start installs the CRDs, starts the informers and workers, and returns
// once the caches have synced; the controller runs until ctx ends.
func (c *Controller) Start(ctx context.Context) error {
	c.ctx = ctx
	if c.cfg.InstallCRDs {
		if err := InstallCRDs(ctx, c.host); err != nil {
			return err
		}
		c.mapper.Reset()
	}
	f := dynamicinformer.NewDynamicSharedInformerFactory(c.host, 0)
	c.clusters = f.ForResource(v1alpha1.ClustersGVR).Informer()
	c.pps = f.ForResource(v1alpha1.PropagationPoliciesGVR).Informer()
	c.cpps = f.ForResource(v1alpha1.ClusterPropagationPolicyGVR).Informer()
	c.ops = f.ForResource(v1alpha1.OverridePoliciesGVR).Informer()
	c.cops = f.ForResource(v1alpha1.ClusterOverridePoliciesGVR).Informer()
	c.clusterView = newView(c.buildClusters, c.clusters.GetStore())
	c.policyView = newView(c.decodePolicies, c.pps.GetStore(), c.cpps.GetStore())
	c.overrideView = newView(c.decodeOverrides, c.ops.GetStore(), c.cops.GetStore())
	// Member kubeconfigs (join stores them in this namespace).
	kf := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithNamespace(v1alpha1.Namespace))
	secretInf := kf.Core().V1().Secrets()
	c.secrets = secretInf.Lister()
	_ = secretInf.Informer()
	policyChanged := func(o any) { c.onPolicy(o) }
	for _, inf := range []cache.SharedIndexInformer{c.pps, c.cpps} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: policyChanged, UpdateFunc: func(_, o any) { policyChanged(o) }, DeleteFunc: policyChanged,
		})
	}
	everything := func(any) { c.enqueueAll() }
	for _, inf := range []cache.SharedIndexInformer{c.ops, c.cops} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: everything, UpdateFunc: func(_, o any) { everything(o) }, DeleteFunc: everything,
		})
	}
	_, _ = c.clusters.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    everything,
		UpdateFunc: func(old, cur any) { c.onClusterUpdate(old, cur) },
		DeleteFunc: func(o any) { c.onClusterDelete(o) },
	})
	f.Start(ctx.Done())
	kf.Start(ctx.Done())
	for gvr, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing %s informer: %w", gvr.Resource, ctx.Err())
		}
	}
	for _, ok := range kf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("syncing secrets informer: %w", ctx.Err())
		}
	}
	// Informers for what existing policies select.
	for _, p := range c.policies() {
		c.watchSelected(p.spec.ResourceSelectors)
	}
	// The member caches of those kinds start loading as soon as the host
	// informers have synced, not when the first reconcile needs them;
	// not before, because decoding the member lists (five times the host
	// list in a fleet of five) would slow the host list down, and until
	// it is in, a change made right after a restart cannot be seen (see
	// recordedUnchanged).
	go c.preloadMembers(ctx)
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
		c.mu.Lock()
		for _, m := range c.members {
			m.cancel()
		}
		c.mu.Unlock()
	}()
	for range c.cfg.Workers {
		go c.worker(ctx)
	}
	go c.healthLoop(ctx)
	c.log.Info("federation control plane started", "workers", c.cfg.Workers)
	return nil
}

// preloadMembers waits for the host informers to sync, then connects to
// every joined member and starts its caches of the kinds they watch.
func (c *Controller) preloadMembers(ctx context.Context) {
	c.mu.Lock()
	gvrs := slices.Collect(maps.Keys(c.informers))
	var synced []cache.InformerSynced
	for _, inf := range c.informers {
		synced = append(synced, inf.HasSynced)
	}
	c.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	for _, cl := range c.clusterList() {
		m, err := c.member(ctx, cl.Name)
		if err != nil {
			c.log.Warn("connecting to member", "cluster", cl.Name, "err", err)
			continue
		}
		for _, gvr := range gvrs {
			m.informer(gvr)
		}
	}
}

// enqueue queues k for a live change: ahead of background work.
func (c *Controller) enqueue(k objectKey) {
	c.bg.clear(k)
	c.add(k)
}

// enqueueBackground queues k behind live changes (bulk requeues).
// rv is the host object's resourceVersion ("" keeps the one recorded):
// background work goes most recent first.
func (c *Controller) enqueueBackground(k objectKey, rv string) {
	c.bg.mark(k, rv)
	c.add(k)
}

func (c *Controller) add(k objectKey) {
	c.mu.Lock()
	if _, ok := c.queuedAt[k]; !ok {
		c.queuedAt[k] = time.Now()
	}
	c.mu.Unlock()
	c.queue.Add(k)
}

// enqueueAll requeues every object of every watched type.
func (c *Controller) enqueueAll() {
	c.mu.Lock()
	infs := make(map[schema.GroupVersionResource]cache.SharedIndexInformer, len(c.informers))
	for k, v := range c.informers {
		infs[k] = v
	}
	c.mu.Unlock()
	for gvr, inf := range infs {
		for _, o := range inf.GetStore().List() {
			if acc, err := meta.Accessor(o); err == nil {
				c.enqueueBackground(objectKey{gvr, acc.GetNamespace(), acc.GetName()}, acc.GetResourceVersion())
			}
		}
	}
}

func (c *Controller) onPolicy(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return
	}
	var p v1alpha1.PropagationPolicy
	if err := v1alpha1.FromUnstructured(u.Object, &p); err != nil {
		c.log.Warn("ignoring undecodable policy", "name", u.GetName(), "err", err)
		return
	}
	c.watchSelected(p.Spec.ResourceSelectors)
	c.enqueueAll()
}

// watchSelected starts host informers for the types sels name.
func (c *Controller) watchSelected(sels []v1alpha1.ResourceSelector) {
	for _, s := range sels {
		gv, err := schema.ParseGroupVersion(s.APIVersion)
		if err != nil {
			c.log.Warn("policy selects a bad apiVersion", "apiVersion", s.APIVersion, "err", err)
			continue
		}
		gvr, _, err := c.resolve(gv.WithKind(s.Kind))
		if err != nil {
			c.log.Warn("policy selects an unknown kind", "apiVersion", s.APIVersion, "kind", s.Kind, "err", err)
			continue
		}
		c.watch(gvr)
	}
}

// resolve maps a kind to its resource and scope, refreshing discovery once
// on a miss (new CRDs).
func (c *Controller) resolve(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		c.mapper.Reset()
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return schema.GroupVersionResource{}, false, fmt.Errorf("resolving %s: %w", gvk, err)
		}
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// watch starts (once) a host informer for gvr and returns it.
func (c *Controller) watch(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if inf, ok := c.informers[gvr]; ok {
		return inf
	}
	inf := cache.NewSharedIndexInformer(&hostListWatch{rc: c.hostRC, dyn: c.host, gvr: gvr}, &unstructured.Unstructured{}, 0, cache.Indexers{})
	_ = inf.SetTransform(compactHostObject)
	h := func(o any, initial bool) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		acc, err := meta.Accessor(o)
		if err != nil {
			return
		}
		k := objectKey{gvr, acc.GetNamespace(), acc.GetName()}
		switch {
		case initial:
			c.enqueueBackground(k, acc.GetResourceVersion())
		case c.ownHostWrite(k, acc.GetResourceVersion()):
		default:
			c.enqueue(k)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{AddFunc: h, UpdateFunc: func(_, o any) { h(o, false) },
		DeleteFunc: func(o any) { h(o, false) }})
	c.informers[gvr] = inf
	go inf.Run(c.ctx.Done())
	return inf
}

func (c *Controller) worker(ctx context.Context) {
	for {
		k, quit := c.queue.Get()
		if quit {
			return
		}
		rctx := ctx
		if c.bg.has(k) {
			rctx = context.WithValue(ctx, bulkKey{}, true)
		}
		c.bg.clear(k)
		err := c.reconcile(rctx, k)
		switch {
		case err == nil:
			c.queue.Forget(k)
		case ctx.Err() != nil:
		default:
			c.log.Warn("reconcile failed; retrying", "object", k.String(), "err", err)
			c.queue.AddRateLimited(k)
		}
		c.queue.Done(k)
	}
}

// bulkKey marks the context of a reconcile that came from the background
// (an initial list or a requeue of everything), not from a live change.
type bulkKey struct{}

func isBulk(ctx context.Context) bool { b, _ := ctx.Value(bulkKey{}).(bool); return b }

// bulkRetry is how often parked bulk keys check whether the member
// caches they wait for have loaded.
const bulkRetry = 100 * time.Millisecond

// park sets k aside until the member caches of its kind have loaded; then
// it is queued again as background work, together with every other key
// parked for that kind, so that they are ordered among themselves (most
// recently modified first) rather than by when each happened to retry.
func (c *Controller) isParked(k objectKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.parked[k]
	return ok
}

// waiting is the number of keys queued or parked.
func (c *Controller) waiting() int {
	c.mu.Lock()
	n := len(c.parked)
	c.mu.Unlock()
	return n + c.queue.Len()
}

func (c *Controller) park(k objectKey, rv string) {
	c.mu.Lock()
	c.parked[k] = rv
	start := !c.unparking
	c.unparking = true
	c.mu.Unlock()
	if start {
		go c.unparkLoop()
	}
}

// unparkLoop requeues parked keys whose kind's member caches have loaded,
// until none is left.
func (c *Controller) unparkLoop() {
	t := time.NewTicker(bulkRetry)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		gvrs := map[schema.GroupVersionResource]bool{}
		for k := range c.parked {
			gvrs[k.GVR] = true
		}
		c.mu.Unlock()
		ready := map[schema.GroupVersionResource]bool{}
		for gvr := range gvrs {
			ready[gvr] = !c.membersSyncing(c.ctx, gvr)
		}
		out := map[objectKey]string{}
		c.mu.Lock()
		for k, rv := range c.parked {
			if ready[k.GVR] {
				out[k] = rv
				delete(c.parked, k)
			}
		}
		done := len(c.parked) == 0
		if done {
			c.unparking = false
		}
		c.mu.Unlock()
		for k, rv := range out {
			c.enqueueBackground(k, rv)
		}
		if done {
			return
		}
	}
}

// membersSyncing reports whether the cache of gvr of any joined member is
// still loading (see member.syncing).
func (c *Controller) membersSyncing(ctx context.Context, gvr schema.GroupVersionResource) bool {
	for _, cl := range c.clusterList() {
		if m, err := c.member(ctx, cl.Name); err == nil && m.syncing(gvr) {
			return true
		}
	}
	return false
}

// policy is a matched propagation policy.
type policy struct {
	name        string // "ns/name" or "cluster/name"
	clusterWide bool
	spec        v1alpha1.PropagationSpec
}

// policies returns the decoded propagation policies (shared: read only).
func (c *Controller) policies() []policy { return c.policyView.get() }

func (c *Controller) decodePolicies() []policy {
	var out []policy
	for _, inf := range []cache.SharedIndexInformer{c.pps, c.cpps} {
		for _, o := range inf.GetStore().List() {
			u := o.(*unstructured.Unstructured)
			var p v1alpha1.PropagationPolicy
			if err := v1alpha1.FromUnstructured(u.Object, &p); err != nil {
				continue
			}
			name := u.GetNamespace() + "/" + u.GetName()
			if inf == c.cpps {
				name = "cluster/" + u.GetName()
			}
			out = append(out, policy{name: name, clusterWide: inf == c.cpps, spec: p.Spec})
		}
	}
	return out
}

// MatchPolicy picks the policy for obj among ps: namespaced (same
// namespace) beats cluster-wide, then higher priority, then the more
// specific selector (name > labels > kind), then the lower name. Returns
// false if none matches.
func MatchPolicy(obj *unstructured.Unstructured, ps []policy) (policy, bool) {
	var best policy
	bestRank := [3]int{-1}
	found := false
	for _, p := range ps {
		if !p.clusterWide {
			if ns, _, _ := splitName(p.name); ns != obj.GetNamespace() {
				continue
			}
		}
		spec := 0
		for i := range p.spec.ResourceSelectors {
			spec = max(spec, override.Selects(&p.spec.ResourceSelectors[i], obj))
		}
		if spec == 0 {
			continue
		}
		scope := 1
		if p.clusterWide {
			scope = 0
		}
		rank := [3]int{scope, int(p.spec.Priority), spec}
		if !found || rankLess(bestRank, rank) || (rank == bestRank && p.name < best.name) {
			best, bestRank, found = p, rank, true
		}
	}
	return best, found
}

func rankLess(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func splitName(n string) (string, string, bool) {
	for i := range n {
		if n[i] == '/' {
			return n[:i], n[i+1:], true
		}
	}
	return "", n, false
}

// overridePolicies returns the override policies in scope for obj:
// cluster-wide ones, then those of obj's namespace, each kind in the
// informer's order (override.Apply sorts).
func (c *Controller) overridePolicies(obj *unstructured.Unstructured) []override.Policy {
	var out []override.Policy
	for _, p := range c.overrideView.get() {
		if !p.ClusterWide && p.Namespace != obj.GetNamespace() {
			continue
		}
		out = append(out, p.Policy)
	}
	return out
}

// namespacedOverride is a decoded override policy with its namespace.
type namespacedOverride struct {
	override.Policy
	Namespace string
}

func (c *Controller) decodeOverrides() []namespacedOverride {
	var out []namespacedOverride
	for _, inf := range []cache.SharedIndexInformer{c.cops, c.ops} {
		for _, o := range inf.GetStore().List() {
			u := o.(*unstructured.Unstructured)
			var p v1alpha1.OverridePolicy
			if err := v1alpha1.FromUnstructured(u.Object, &p); err != nil {
				c.log.Warn("ignoring undecodable override policy", "name", u.GetName(), "err", err)
				continue
			}
			out = append(out, namespacedOverride{Policy: override.Policy{ClusterWide: inf == c.cops, Name: u.GetName(), Spec: p.Spec}, Namespace: u.GetNamespace()})
		}
	}
	return out
}

// clusterList returns every joined cluster (shared: read only).
func (c *Controller) clusterList() []*v1alpha1.Cluster { return c.clusterView.get().list }

func (c *Controller) stateOf(k objectKey) *objState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.state[k]
	if !ok {
		s = &objState{hashes: map[string]string{}, evicted: map[string]bool{}}
		c.state[k] = s
	}
	return s
}

// reconcile brings members in line with one host object.
func (c *Controller) reconcile(ctx context.Context, k objectKey) error {
	c.mu.Lock()
	queued := c.queuedAt[k]
	delete(c.queuedAt, k)
	inf := c.informers[k.GVR]
	c.mu.Unlock()
	if inf == nil {
		return nil
	}
	key := k.Name
	if k.Namespace != "" {
		key = k.Namespace + "/" + k.Name
	}
	o, exists, err := inf.GetStore().GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		c.forget(k)
		return nil
	}
	// A bulk reconcile while the member caches of its kind load (after a
	// start) compares the rendering with the hashes the host object
	// records (see recordedUnchanged) and otherwise waits, parked without
	// holding a worker, for the caches; a parked key queued again by a
	// member cache's initial list needs nothing until then.
	hostRV := ""
	if acc, err := meta.Accessor(o); err == nil {
		hostRV = acc.GetResourceVersion()
	}
	loading := isBulk(ctx) && c.membersSyncing(ctx, k.GVR)
	if loading && c.isParked(k) {
		return nil
	}
	obj, err := hostObject(o)
	if err != nil {
		return err
	}
	if obj.GetDeletionTimestamp() != nil {
		return c.finalize(ctx, k, obj)
	}

	pol, hasPolicy := MatchPolicy(obj, c.policies())
	depClusters := c.depClusters(k)
	if !hasPolicy && len(depClusters) == 0 {
		return c.orphan(ctx, k, obj)
	}

	st := c.stateOf(k)
	// The finalizer goes on before anything reaches a member.
	if !slices.Contains(obj.GetFinalizers(), v1alpha1.Finalizer) {
		obj.SetFinalizers(append(obj.GetFinalizers(), v1alpha1.Finalizer))
		if obj, err = c.host.Resource(k.GVR).Namespace(k.Namespace).Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("adding finalizer: %w", err)
		}
		c.m.hostWrites.WithLabelValues("finalizer").Inc()
		c.recordHostWrite(st, obj)
	}

	cs := c.clusterView.get()
	clusters, infos, all := cs.list, cs.info, cs.infos
	prev := c.previousClusters(obj, st)

	// Placement.
	targets := map[string]*int32{}
	var breakdown []v1alpha1.ClusterBreakdown
	var placeErr error
	var recheck time.Duration
	var evicting map[string]bool
	var failoverNotes map[string]string
	replicas, hasReplicas := render.Replicas(obj)
	if hasPolicy {
		req := &placement.Request{Placement: pol.spec.Placement, HasReplicas: hasReplicas, Replicas: replicas,
			Previous: prev, KeepUnready: map[string]bool{}, Evicted: map[string]bool{}}
		req.ReplicaMilliCPU, req.ReplicaMemory = render.ReplicaRequests(obj)
		byCapacity := false
		var held map[string]int32
		if rs := pol.spec.Placement.ReplicaScheduling; rs != nil && rs.Type == v1alpha1.Divided && rs.Preference == v1alpha1.DivideByCapacity {
			byCapacity = true
			held, req.Holding = c.holding(k, prev)
			c.mu.Lock()
			if len(st.division) > 0 {
				held = maps.Clone(st.division)
			}
			c.mu.Unlock()
		}
		recheck, evicting, failoverNotes = c.applyFailover(pol.spec.Failover, clusters, req, st)
		res, err := c.sched.Schedule(ctx, req, all)
		if err != nil {
			placeErr = err
		} else {
			for _, t := range res.Targets {
				targets[t.Cluster] = t.Replicas
			}
			if byCapacity && hasReplicas {
				keepDivision(targets, held, replicas)
				division := map[string]int32{}
				for cl, n := range targets {
					if n != nil {
						division[cl] = *n
					}
				}
				c.mu.Lock()
				st.division = division
				c.mu.Unlock()
			}
		}
	}
	for cl := range depClusters {
		if _, ok := targets[cl]; !ok {
			targets[cl] = nil
		}
	}
	if !hasPolicy || !hasReplicas {
		for cl := range targets {
			targets[cl] = nil
		}
	}

	// Render and apply.
	ovr := c.overridePolicies(obj)
	var members []MemberObject
	wrote := false
	var errs []error
	names := make([]string, 0, len(targets))
	for cl := range targets {
		names = append(names, cl)
	}
	sort.Strings(names)

	// Render each cluster's manifest, then apply to the clusters in
	// parallel (one request per member at most).
	type outcome struct {
		b        v1alpha1.ClusterBreakdown
		rendered bool
		hash     string
		cur      *unstructured.Unstructured
		applied  bool
		err      error
		desired  *unstructured.Unstructured // kept while member caches load
	}
	outs := make([]outcome, len(names))
	var applying sync.WaitGroup
	for i, cl := range names {
		o := &outs[i]
		o.b = v1alpha1.ClusterBreakdown{Cluster: cl, Replicas: targets[cl], Failover: failoverNotes[cl]}
		if targets[cl] != nil {
			if n, hpa, ok := c.memberHPA(cl, k, obj.GetKind()); ok {
				// A member HPA owns the replicas: keep what it set.
				targets[cl], o.b.Replicas, o.b.ReplicasFrom = n, n, "hpa/"+hpa
			}
		}
		desired, hash, err := render.Render(obj, infos[cl], targets[cl], ovr)
		if err != nil {
			o.b.Error = err.Error()
			continue
		}
		o.rendered, o.hash = true, hash
		if loading {
			o.desired = desired
			continue
		}
		if cur, ok := c.unchanged(ctx, k, cl, hash, st); ok {
			o.cur = cur
			continue
		}
		applying.Go(func() {
			o.cur, o.applied, o.err = c.applyTo(ctx, k, cl, desired, hash, pol.spec.ConflictResolution, st)
		})
	}
	if loading {
		hashes := map[string]string{}
		for i, cl := range names {
			if outs[i].rendered {
				hashes[cl] = outs[i].hash
			}
		}
		switch known, same := recordedUnchanged(obj, names, hashes); {
		case !known:
			// No record to go by: wait for the member caches.
			c.park(k, hostRV)
			return nil
		case same:
			// Unchanged since its copies were last written: nothing to
			// do now; checked against the member caches once they have
			// loaded.
			c.mu.Lock()
			maps.Copy(st.hashes, hashes)
			c.mu.Unlock()
			c.m.skipped.Add(float64(len(hashes)))
			if hasPolicy && (pol.spec.PropagateDeps == nil || *pol.spec.PropagateDeps) {
				c.trackDeps(k, obj, st)
			}
			c.park(k, hostRV)
			return nil
		}
		// Changed while the control plane was down (or since it
		// started): apply now, reading members whose cache is not there.
		for i, cl := range names {
			o := &outs[i]
			if !o.rendered {
				continue
			}
			applying.Go(func() {
				o.cur, o.applied, o.err = c.applyTo(ctx, k, cl, o.desired, o.hash, pol.spec.ConflictResolution, st)
			})
		}
	}
	applying.Wait()
	for i, cl := range names {
		o := &outs[i]
		b := o.b
		if !o.rendered {
			breakdown = append(breakdown, b)
			continue
		}
		cur, hash, err := o.cur, o.hash, o.err
		if o.applied {
			wrote = true
		}
		if err != nil {
			b.Error = err.Error()
			if !errors.Is(err, errConflict) {
				errs = append(errs, err)
			}
		} else {
			b.Applied, b.Hash = true, hash
		}
		members = append(members, MemberObject{Cluster: cl, Obj: cur, Hash: hash})
		if cur != nil {
			stt, _, _ := unstructured.NestedMap(cur.Object, "status")
			b.ReadyReplicas, b.AvailableReplicas, b.UpdatedReplicas = int32(num(stt, "readyReplicas")), int32(num(stt, "availableReplicas")), int32(num(stt, "updatedReplicas"))
		}
		breakdown = append(breakdown, b)
	}

	// Remove from clusters no longer selected (new copies first: an
	// evicted cluster keeps its copy until the others are ready).
	var readyNow int64
	for _, m := range members {
		if m.Obj != nil {
			n, _, _ := unstructured.NestedInt64(m.Obj.Object, "status", "readyReplicas")
			readyNow += n
		}
	}
	for cl := range prev {
		if _, ok := targets[cl]; ok {
			continue
		}
		if _, joined := infos[cl]; !joined {
			c.dropCluster(st, cl) // unjoined: orphan
			continue
		}
		if placeErr != nil {
			// Keep what is there when placement failed.
			breakdown = append(breakdown, v1alpha1.ClusterBreakdown{Cluster: cl, Error: "kept: " + placeErr.Error()})
			continue
		}
		if evicting[cl] && hasReplicas && readyNow < int64(replicas) {
			breakdown = append(breakdown, v1alpha1.ClusterBreakdown{Cluster: cl, Evicted: true, Error: "waiting for replacement replicas before removal"})
			recheck = max(recheck, time.Second)
			continue
		}
		if err := c.deleteFrom(ctx, k, cl); err != nil {
			errs = append(errs, err)
			breakdown = append(breakdown, v1alpha1.ClusterBreakdown{Cluster: cl, Error: err.Error()})
			continue
		}
		c.dropCluster(st, cl)
	}

	// Dependencies follow the workload.
	if hasPolicy && (pol.spec.PropagateDeps == nil || *pol.spec.PropagateDeps) {
		c.trackDeps(k, obj, st)
	}

	if err := c.writeHost(ctx, k, st, obj, pol, hasPolicy, breakdown, placeErr, members); err != nil {
		errs = append(errs, err)
	}
	if wrote && !queued.IsZero() {
		c.m.latency.Observe(time.Since(queued).Seconds())
	}
	if recheck > 0 {
		c.queue.AddAfter(k, recheck)
	}
	return errors.Join(errs...)
}

var errConflict = errors.New("conflict")

// recordedUnchanged compares the hashes rendered now for clusters names
// with those the host object's breakdown annotation records as applied.
// known is false when there is no usable record (no annotation, or one
// written before hashes were recorded); same is true when every cluster
// got exactly this rendering and no other cluster holds a copy.
func recordedUnchanged(obj *unstructured.Unstructured, names []string, hashes map[string]string) (known, same bool) {
	var bs []v1alpha1.ClusterBreakdown
	a := obj.GetAnnotations()[v1alpha1.AnnotationClusters]
	if a == "" || json.Unmarshal([]byte(a), &bs) != nil {
		return false, false
	}
	rec := map[string]string{}
	for _, b := range bs {
		if !b.Applied {
			continue
		}
		if b.Hash == "" {
			return false, false
		}
		rec[b.Cluster] = b.Hash
	}
	if len(rec) != len(names) || len(hashes) != len(names) {
		return true, false
	}
	for _, cl := range names {
		if h, ok := rec[cl]; !ok || h != hashes[cl] {
			return true, false
		}
	}
	return true, true
}

// applyFailover fills req's KeepUnready/Evicted from the failover policy
// and remembers evictions in st. It returns when to look again and which
// clusters are being evicted now.
func (c *Controller) applyFailover(fp *v1alpha1.FailoverPolicy, clusters []*v1alpha1.Cluster, req *placement.Request, st *objState) (time.Duration, map[string]bool, map[string]string) {
	health := make([]ClusterHealth, 0, len(clusters))
	for _, cl := range clusters {
		h := ClusterHealth{Name: cl.Name}
		if cond := meta.FindStatusCondition(cl.Status.Conditions, v1alpha1.ClusterReady); cond != nil {
			h.Ready = cond.Status == metav1.ConditionTrue
			h.NotReadySince = cond.LastTransitionTime.Time
		}
		health = append(health, h)
	}
	if fp == nil {
		// No failover: an unready cluster keeps what it has.
		for _, h := range health {
			if !h.Ready && req.Previous[h.Name] {
				req.KeepUnready[h.Name] = true
			}
		}
		return 0, nil, nil
	}
	tol := 300 * time.Second
	if fp.TolerationSeconds != nil {
		tol = time.Duration(*fp.TolerationSeconds) * time.Second
	}
	d := Failover(health, c.clock.Now(), tol)
	notes := map[string]string{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range d.Tolerating {
		if req.Previous[name] {
			req.KeepUnready[name] = true
		}
		notes[name] = fmt.Sprintf("not ready; tolerated for %s", tol)
		if d.Held[name] {
			notes[name] = fmt.Sprintf("toleration over, eviction held by the fleet brake: %d of %d clusters not ready", d.Unready, d.Total)
		}
	}
	if d.Brake {
		c.m.brake.Set(1)
	} else {
		c.m.brake.Set(0)
	}
	evicting := map[string]bool{}
	for name := range d.Evict {
		if req.Previous[name] || st.evicted[name] {
			st.evicted[name] = true
			evicting[name] = true
		}
	}
	ready := map[string]bool{}
	for _, h := range health {
		ready[h.Name] = h.Ready
	}
	for name := range st.evicted {
		if ready[name] && fp.Rebalance {
			delete(st.evicted, name) // recovered: may take replicas again
			continue
		}
		req.Evicted[name] = true
	}
	return d.RecheckAfter, evicting, notes
}

// previousClusters are the clusters holding obj: what this process
// applied, else what the breakdown annotation says (after a restart).
func (c *Controller) previousClusters(obj *unstructured.Unstructured, st *objState) map[string]bool {
	out := map[string]bool{}
	c.mu.Lock()
	for cl := range st.hashes {
		out[cl] = true
	}
	c.mu.Unlock()
	if len(out) == 0 {
		var bs []v1alpha1.ClusterBreakdown
		if a := obj.GetAnnotations()[v1alpha1.AnnotationClusters]; a != "" && json.Unmarshal([]byte(a), &bs) == nil {
			for _, b := range bs {
				if b.Applied {
					out[b.Cluster] = true
				}
			}
		}
	}
	return out
}

func (c *Controller) dropCluster(st *objState, cl string) {
	c.mu.Lock()
	delete(st.hashes, cl)
	c.mu.Unlock()
}

// member returns the connection to cluster cl, (re)building it when its
// kubeconfig Secret changed.
func (c *Controller) member(ctx context.Context, cl string) (*member, error) {
	cluster := c.clusterView.get().byName[cl]
	if cluster == nil {
		return nil, fmt.Errorf("cluster %s is not joined", cl)
	}
	ns := cluster.Spec.SecretRef.Namespace
	if ns == "" {
		ns = v1alpha1.Namespace
	}
	// From the cache when it is in the watched namespace (a Secret
	// written a moment ago may not be there yet: then read it).
	var sec *corev1.Secret
	var err error
	if ns == v1alpha1.Namespace && c.secrets != nil {
		sec, err = c.secrets.Secrets(ns).Get(cluster.Spec.SecretRef.Name)
	}
	if sec == nil {
		if sec, err = c.kube.CoreV1().Secrets(ns).Get(ctx, cluster.Spec.SecretRef.Name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("reading kubeconfig secret of cluster %s: %w", cl, err)
		}
	}
	c.mu.Lock()
	m := c.members[cl]
	c.mu.Unlock()
	if m != nil && m.secretRV == sec.ResourceVersion {
		return m, nil
	}
	cfg, err := memberConfig(sec.Data["kubeconfig"])
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cl, err)
	}
	cfg.QPS, cfg.Burst = c.cfg.MemberQPS, c.cfg.MemberBurst
	nm, err := newMember(c.ctx, cl, sec.ResourceVersion, cfg, c.cfg.HealthTimeout, func(gvr schema.GroupVersionResource, ns, name, rv string, managed, initial bool) {
		k := objectKey{gvr, ns, name}
		switch {
		case !managed && !c.known(k):
			// A member object of a propagated kind that keelson never
			// wrote nor tried to: none of its business.
		case initial:
			c.enqueueBackground(k, "")
		case c.ownMemberWrite(k, cl, rv):
		default:
			c.enqueue(k)
		}
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if old := c.members[cl]; old != nil {
		old.cancel()
	}
	c.members[cl] = nm
	c.mu.Unlock()
	return nm, nil
}

// cachedMember returns an existing member connection without building one.
func (c *Controller) cachedMember(cl string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[cl]
}

// readMember reads the member's copy of k whole; nil if there is none.
func readMember(ctx context.Context, client dynamic.ResourceInterface, k objectKey, cl string) (*unstructured.Unstructured, error) {
	got, err := client.Get(ctx, k.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading %s in %s: %w", k, cl, err)
	}
	return got, nil
}

// applyTo applies desired to cluster cl unless its hash is already there.
// It returns the member's copy as last seen, whether a write happened,
// and an error (wrapping errConflict for conflicts).
func (c *Controller) applyTo(ctx context.Context, k objectKey, cl string, desired *unstructured.Unstructured, hash string, res v1alpha1.ConflictResolution, st *objState) (*unstructured.Unstructured, bool, error) {
	m, err := c.member(ctx, cl)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MemberTimeout)
	defer cancel()
	cur, synced := m.cached(k.GVR, k.Namespace, k.Name)
	client := m.dyn.Resource(k.GVR).Namespace(k.Namespace)
	drift := false
	switch {
	case synced && cur != nil && cur.GetLabels()[v1alpha1.LabelManaged] == "true" && cur.GetAnnotations()[v1alpha1.AnnotationHash] == hash:
		// keelson's copy with the current hash, changed since keelson
		// last wrote or checked it (unchanged() let it through): the
		// cache keeps only metadata and status, so read it whole and
		// compare with what keelson applies.
		if cur, err = readMember(ctx, client, k, cl); err != nil {
			return nil, false, err
		}
		if cur != nil && cur.GetAnnotations()[v1alpha1.AnnotationHash] == hash {
			if !c.drifted(cl, cur, desired, st) {
				c.mu.Lock()
				st.hashes[cl] = hash
				c.mu.Unlock()
				c.m.skipped.Inc()
				return cur, false, nil
			}
			drift = true // ours, but changed in the member: apply again
		}
	case !synced || (cur != nil && cur.GetLabels()[v1alpha1.LabelManaged] != "true"):
		// Cache not ready, or an object keelson does not manage: read
		// all of it for the conflict check. (Absent from a synced cache
		// means absent, as far as a read a moment earlier could tell.)
		if cur, err = readMember(ctx, client, k, cl); err != nil {
			return nil, false, err
		}
	}
	action, why := render.Resolve(cur, desired, res)
	if drift {
		action, why = render.Apply, "correcting drift: the member's copy was changed outside keelson"
	}
	switch action {
	case render.Skip:
		c.mu.Lock()
		st.hashes[cl] = hash
		c.mu.Unlock()
		c.m.skipped.Inc()
		return cur, false, nil
	case render.Abort:
		return cur, false, fmt.Errorf("%w: %s", errConflict, why)
	}
	if why != "" {
		c.log.Info(why, "object", k.String(), "cluster", cl)
	}
	if err := m.ensureNamespace(ctx, k.Namespace); err != nil {
		return cur, false, err
	}
	body, err := json.Marshal(desired.Object)
	if err != nil {
		return cur, false, fmt.Errorf("encoding %s: %w", k, err)
	}
	out, err := m.apply(ctx, k.GVR, k.Namespace, k.Name, body)
	if err != nil {
		c.m.applies.WithLabelValues(cl, "apply", "error").Inc()
		return cur, false, fmt.Errorf("applying %s to %s: %w", k, cl, err)
	}
	c.m.applies.WithLabelValues(cl, "apply", "ok").Inc()
	if drift {
		c.m.drift.WithLabelValues(cl).Inc()
	}
	c.mu.Lock()
	st.hashes[cl] = hash
	if st.memberRV == nil {
		st.memberRV = map[string]string{}
	}
	st.memberRV[cl] = out.GetResourceVersion()
	c.mu.Unlock()
	return out, true, nil
}

// unchanged reports whether cluster cl already holds rendering hash of k
// according to the member cache, without a request: the copy there is
// managed and carries the hash. This is what makes a restart write
// nothing for unchanged objects: the member caches are the memory. The
// first call per kind and member waits for that cache to sync.
func (c *Controller) unchanged(ctx context.Context, k objectKey, cl, hash string, st *objState) (*unstructured.Unstructured, bool) {
	m, err := c.member(ctx, cl)
	if err != nil {
		return nil, false
	}
	cur, synced := m.cached(k.GVR, k.Namespace, k.Name)
	if !synced || cur == nil || cur.GetLabels()[v1alpha1.LabelManaged] != "true" || cur.GetAnnotations()[v1alpha1.AnnotationHash] != hash {
		return nil, false
	}
	rv := cur.GetResourceVersion()
	c.mu.Lock()
	defer c.mu.Unlock()
	if rv != st.memberRV[cl] && rv != st.checkedRV[cl] {
		if !isBulk(ctx) {
			// Changed since keelson wrote or checked it: applyTo reads
			// it whole and looks for drift.
			return nil, false
		}
		// A bulk reconcile (start, resync) trusts the hash: reading
		// every copy whole after a restart would cost a request per
		// object and cluster. Drift made while the control plane was
		// down is corrected on the copy's next change.
		if st.checkedRV == nil {
			st.checkedRV = map[string]string{}
		}
		st.checkedRV[cl] = rv
	}
	st.hashes[cl] = hash
	c.m.skipped.Inc()
	return cur, true
}

// recordHostWrite remembers obj's new resourceVersion as this process's
// own write.
func (c *Controller) recordHostWrite(st *objState, obj *unstructured.Unstructured) {
	c.mu.Lock()
	st.wroteHost(obj.GetResourceVersion())
	c.mu.Unlock()
}

// ownHostWrite reports whether resourceVersion rv of host object k is
// one this process wrote (its own write coming back on the watch).
func (c *Controller) ownHostWrite(k objectKey, rv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state[k]
	return st != nil && rv != "" && slices.Contains(st.hostRVs, rv)
}

// known reports whether the controller keeps state for host object k.
func (c *Controller) known(k objectKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state[k] != nil
}

// ownMemberWrite reports whether resourceVersion rv of k in cluster cl
// is this process's last write there.
func (c *Controller) ownMemberWrite(k objectKey, cl, rv string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state[k]
	return st != nil && rv != "" && st.memberRV[cl] == rv
}

// deleteFrom deletes the member copy of k from cl if keelson manages it.
func (c *Controller) deleteFrom(ctx context.Context, k objectKey, cl string) error {
	m, err := c.member(ctx, cl)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MemberTimeout)
	defer cancel()
	client := m.dyn.Resource(k.GVR).Namespace(k.Namespace)
	cur, err := client.Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s in %s: %w", k, cl, err)
	}
	if cur.GetLabels()[v1alpha1.LabelManaged] != "true" {
		return nil // not ours: never delete it
	}
	uid := cur.GetUID()
	bg := metav1.DeletePropagationBackground
	err = client.Delete(ctx, k.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		c.m.applies.WithLabelValues(cl, "delete", "error").Inc()
		return fmt.Errorf("deleting %s from %s: %w", k, cl, err)
	}
	c.m.applies.WithLabelValues(cl, "delete", "ok").Inc()
	return nil
}

// finalize deletes a host object's member copies, then its finalizer.
func (c *Controller) finalize(ctx context.Context, k objectKey, obj *unstructured.Unstructured) error {
	if !slices.Contains(obj.GetFinalizers(), v1alpha1.Finalizer) {
		c.forget(k)
		return nil
	}
	st := c.stateOf(k)
	var errs []error
	joined := map[string]bool{}
	for _, cl := range c.clusterList() {
		joined[cl.Name] = true
	}
	for cl := range c.previousClusters(obj, st) {
		if !joined[cl] {
			continue
		}
		if err := c.deleteFrom(ctx, k, cl); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	obj.SetFinalizers(slices.DeleteFunc(obj.GetFinalizers(), func(f string) bool { return f == v1alpha1.Finalizer }))
	if _, err := c.host.Resource(k.GVR).Namespace(k.Namespace).Update(ctx, obj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	c.forget(k)
	return nil
}

// orphan stops managing obj: its member copies stay where they are.
func (c *Controller) orphan(ctx context.Context, k objectKey, obj *unstructured.Unstructured) error {
	ann := obj.GetAnnotations()
	_, hasPolicy := ann[v1alpha1.AnnotationPolicy]
	_, hasClusters := ann[v1alpha1.AnnotationClusters]
	if slices.Contains(obj.GetFinalizers(), v1alpha1.Finalizer) || hasPolicy || hasClusters {
		obj.SetFinalizers(slices.DeleteFunc(obj.GetFinalizers(), func(f string) bool { return f == v1alpha1.Finalizer }))
		delete(ann, v1alpha1.AnnotationPolicy)
		delete(ann, v1alpha1.AnnotationClusters)
		obj.SetAnnotations(ann)
		if _, err := c.host.Resource(k.GVR).Namespace(k.Namespace).Update(ctx, obj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("releasing orphaned object: %w", err)
		}
		c.log.Info("no policy selects the object any more; member copies orphaned", "object", k.String())
	}
	c.forget(k)
	return nil
}

func (c *Controller) forget(k objectKey) {
	c.mu.Lock()
	st := c.state[k]
	delete(c.state, k)
	var deps []objectKey
	if st != nil {
		deps = st.deps
		for _, d := range deps {
			delete(c.depOwners[d], k)
			if len(c.depOwners[d]) == 0 {
				delete(c.depOwners, d)
			}
		}
	}
	c.mu.Unlock()
	for _, d := range deps {
		c.enqueue(d)
	}
}

var depGVR = map[string]schema.GroupVersionResource{
	"ConfigMap":      {Version: "v1", Resource: "configmaps"},
	"Secret":         {Version: "v1", Resource: "secrets"},
	"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
}

// trackDeps records which dependencies k has now and requeues those that
// were added or dropped.
func (c *Controller) trackDeps(k objectKey, obj *unstructured.Unstructured, st *objState) {
	var now []objectKey
	for _, d := range render.Dependencies(obj) {
		gvr := depGVR[d.Kind]
		c.watch(gvr)
		now = append(now, objectKey{gvr, k.Namespace, d.Name})
	}
	c.mu.Lock()
	old := st.deps
	st.deps = now
	for _, d := range old {
		if !slices.Contains(now, d) {
			delete(c.depOwners[d], k)
			if len(c.depOwners[d]) == 0 {
				delete(c.depOwners, d)
			}
		}
	}
	for _, d := range now {
		if c.depOwners[d] == nil {
			c.depOwners[d] = map[objectKey]bool{}
		}
		c.depOwners[d][k] = true
	}
	c.mu.Unlock()
	for _, d := range now {
		c.enqueue(d)
	}
	for _, d := range old {
		if !slices.Contains(now, d) {
			c.enqueue(d)
		}
	}
}

// depClusters is the union of the clusters holding workloads that
// reference k.
func (c *Controller) depClusters(k objectKey) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for owner := range c.depOwners[k] {
		if st := c.state[owner]; st != nil {
			for cl := range st.hashes {
				if !st.evicted[cl] {
					out[cl] = true
				}
			}
		}
	}
	return out
}

// writeHost records the policy and breakdown annotations and the
// aggregated status on the host object, writing only what changed.
func (c *Controller) writeHost(ctx context.Context, k objectKey, st *objState, obj *unstructured.Unstructured, pol policy, hasPolicy bool, breakdown []v1alpha1.ClusterBreakdown, placeErr error, members []MemberObject) error {
	sort.Slice(breakdown, func(i, j int) bool { return breakdown[i].Cluster < breakdown[j].Cluster })
	if placeErr != nil {
		breakdown = append([]v1alpha1.ClusterBreakdown{{Cluster: "*", Error: placeErr.Error()}}, breakdown...)
	}
	bj, err := json.Marshal(breakdown)
	if err != nil {
		return fmt.Errorf("encoding breakdown: %w", err)
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	want := map[string]string{v1alpha1.AnnotationClusters: string(bj)}
	if hasPolicy {
		want[v1alpha1.AnnotationPolicy] = pol.name
	}
	changed := false
	for key, v := range want {
		if ann[key] != v {
			ann[key] = v
			changed = true
		}
	}
	if !hasPolicy {
		if _, ok := ann[v1alpha1.AnnotationPolicy]; ok {
			delete(ann, v1alpha1.AnnotationPolicy)
			changed = true
		}
	}
	client := c.host.Resource(k.GVR).Namespace(k.Namespace)
	// A Deployment's generation moves on with every annotation change
	// made through the main resource, which would make `kubectl rollout
	// status` wait for an observedGeneration after each breakdown
	// change; its status subresource takes annotation changes without
	// that, so they go along with the status there.
	viaStatus := hasPolicy && k.GVR.Group == "apps" && k.GVR.Resource == "deployments"
	if changed {
		obj.SetAnnotations(ann)
	}
	if changed && !viaStatus {
		obj, err = client.Update(ctx, obj, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("updating annotations of %s: %w", k, err)
		}
		c.m.hostWrites.WithLabelValues("annotations").Inc()
		c.recordHostWrite(st, obj)
	}
	if !hasPolicy {
		return nil
	}
	status := AggregateStatus(obj, members)
	if status == nil {
		return nil
	}
	cur, _, _ := unstructured.NestedMap(obj.Object, "status")
	if statusEqual(cur, status) && !(changed && viaStatus) {
		return nil
	}
	obj.Object["status"] = status
	out, err := client.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating status of %s: %w", k, err)
	}
	c.m.hostWrites.WithLabelValues("status").Inc()
	c.recordHostWrite(st, out)
	return nil
}

// statusEqual compares the fields AggregateStatus sets (condition
// timestamps are kept from cur anyway). A counter of 0 and a missing one
// are equal: the apiserver drops zero counters of workload statuses
// (omitempty), so comparing them literally would rewrite the status of
// every object with a zero counter on every reconcile.
func statusEqual(cur, want map[string]any) bool {
	a, _ := json.Marshal(withoutZeros(onlyKeys(cur, want)))
	b, _ := json.Marshal(withoutZeros(want))
	return string(a) == string(b)
}

// onlyKeys returns the entries of cur whose keys want has.
func onlyKeys(cur, want map[string]any) map[string]any {
	out := map[string]any{}
	for k := range want {
		if v, ok := cur[k]; ok {
			out[k] = v
		}
	}
	return out
}

// withoutZeros returns m without its numeric zero entries.
func withoutZeros(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch n := v.(type) {
		case int64:
			if n == 0 {
				continue
			}
		case float64:
			if n == 0 {
				continue
			}
		case int:
			if n == 0 {
				continue
			}
		case int32:
			if n == 0 {
				continue
			}
		}
		out[k] = v
	}
	return out
}

package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// member is the control plane's connection to one member cluster.
type member struct {
	name       string
	secretRV   string
	dyn        dynamic.Interface
	kube       kubernetes.Interface
	rc         rest.Interface // raw JSON client for applies (see apply)
	ctx        context.Context
	cancel     context.CancelFunc
	onChange   func(gvr schema.GroupVersionResource, ns, name, rv string, managed, initial bool)
	mu         sync.Mutex
	informers  map[schema.GroupVersionResource]cache.SharedIndexInformer
	started    map[schema.GroupVersionResource]time.Time
	namespaces map[string]bool
	// hpas watches every HorizontalPodAutoscaler of the member (hpa.go).
	hpas cache.SharedIndexInformer
	// probeKube is kube with a timeout on every request, for health
	// probes (discovery calls take no context).
	probeKube kubernetes.Interface
}

// memberConfig builds a client configuration from a kubeconfig.
func memberConfig(kubeconfig []byte) (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parsing member kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

func newMember(parent context.Context, name, secretRV string, cfg *rest.Config, probeTimeout time.Duration, onChange func(gvr schema.GroupVersionResource, ns, name, rv string, managed, initial bool)) (*member, error) {
	// One HTTP client (one HTTP/2 connection) for every client of the
	// member.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	rc, err := rest.UnversionedRESTClientForConfigAndClient(dynamic.ConfigFor(cfg), hc)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	pcfg := rest.CopyConfig(cfg)
	pcfg.Timeout = probeTimeout
	probeKube, err := kubernetes.NewForConfig(pcfg)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(parent)
	m := &member{name: name, secretRV: secretRV, dyn: dyn, kube: kube, rc: rc, probeKube: probeKube, ctx: ctx, cancel: cancel, onChange: onChange,
		informers: map[schema.GroupVersionResource]cache.SharedIndexInformer{}, started: map[schema.GroupVersionResource]time.Time{},
		namespaces: map[string]bool{}}
	m.watchHPAs()
	return m, nil
}

// informer returns the member informer for gvr (every object of the kind,
// stripped by stripMemberCopy: absence from a synced cache means a new
// copy needs no read first, and a foreign object is seen by its labels),
// starting it on first use. It does not wait for the cache to sync:
// synced reports whether it has.
func (m *member) informer(gvr schema.GroupVersionResource) (inf cache.SharedIndexInformer, synced bool) {
	m.mu.Lock()
	inf, ok := m.informers[gvr]
	if !ok {
		inf = dynamicinformer.NewFilteredDynamicInformer(m.dyn, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
		_ = inf.SetTransform(stripMemberCopy)
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(o any, initial bool) { m.notify(gvr, o, initial) },
			UpdateFunc: func(_, o any) { m.notify(gvr, o, false) },
			DeleteFunc: func(o any) { m.notify(gvr, o, false) },
		})
		m.informers[gvr] = inf
		m.started[gvr] = time.Now()
		go inf.Run(m.ctx.Done())
	}
	m.mu.Unlock()
	return inf, inf.HasSynced()
}

func (m *member) notify(gvr schema.GroupVersionResource, o any, initial bool) {
	rv := ""
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	} else if acc, err := meta.Accessor(o); err == nil {
		rv = acc.GetResourceVersion()
	}
	if acc, err := meta.Accessor(o); err == nil {
		m.onChange(gvr, acc.GetNamespace(), acc.GetName(), rv, acc.GetLabels()[v1alpha1.LabelManaged] == "true", initial)
	}
}

// memberCopy is what a member cache keeps of one object: identity,
// whether keelson manages it, the hash annotation, generation, status and
// spec.replicas (a member HPA's choice is kept by memberHPA, and capacity
// division counts what each copy asks for in holding). A struct instead of
// the decoded object keeps tens of thousands of member copies small: an
// unstructured copy holds a map per level and per label set, this holds
// plain fields, and the managed label map is shared. Conflict checks on
// objects keelson does not manage read the whole object from the member.
type memberCopy struct {
	// ObjectMeta carries name, namespace, uid, resourceVersion,
	// generation, deletionTimestamp, and the managed label only (so that
	// meta.Accessor and the informer's key function work on it).
	metav1.ObjectMeta
	apiVersion, kind string
	hash             string
	replicas         int64
	hasReplicas      bool
	status           map[string]any
}

// managedLabels is the label set of every managed member copy (shared:
// read only).
var managedLabels = map[string]string{v1alpha1.LabelManaged: "true"}

// object rebuilds the stripped unstructured form of the copy; callers
// get a fresh object each time (the status map is shared: read only).
func (mc *memberCopy) object() *unstructured.Unstructured {
	md := map[string]any{"name": mc.Name, "resourceVersion": mc.ResourceVersion, "uid": string(mc.UID)}
	if mc.Namespace != "" {
		md["namespace"] = mc.Namespace
	}
	if mc.Generation != 0 {
		md["generation"] = mc.Generation
	}
	if mc.Labels != nil {
		md["labels"] = map[string]any{v1alpha1.LabelManaged: "true"}
	}
	if mc.hash != "" {
		md["annotations"] = map[string]any{v1alpha1.AnnotationHash: mc.hash}
	}
	if mc.DeletionTimestamp != nil {
		md["deletionTimestamp"] = mc.DeletionTimestamp.UTC().Format(time.RFC3339)
	}
	out := map[string]any{"apiVersion": mc.apiVersion, "kind": mc.kind, "metadata": md}
	if mc.status != nil {
		out["status"] = mc.status
	}
	if mc.hasReplicas {
		out["spec"] = map[string]any{"replicas": mc.replicas}
	}
	return &unstructured.Unstructured{Object: out}
}

// stripMemberCopy is the member informers' transform: it turns a member
// object into a memberCopy.
func stripMemberCopy(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil // already stripped, or a tombstone
	}
	mc := &memberCopy{apiVersion: u.GetAPIVersion(), kind: u.GetKind(), hash: u.GetAnnotations()[v1alpha1.AnnotationHash]}
	mc.Name, mc.Namespace, mc.UID, mc.ResourceVersion = u.GetName(), u.GetNamespace(), u.GetUID(), u.GetResourceVersion()
	mc.Generation, mc.DeletionTimestamp = u.GetGeneration(), u.GetDeletionTimestamp()
	if u.GetLabels()[v1alpha1.LabelManaged] == "true" {
		mc.Labels = managedLabels
	}
	if st, ok := u.Object["status"].(map[string]any); ok {
		mc.status = st
	}
	if r, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
		mc.replicas, mc.hasReplicas = r, true
	}
	return mc, nil
}

// memberSyncTimeout bounds how long bulk reconciles wait for a member
// cache to sync; past it the control plane reads the member instead.
const memberSyncTimeout = 30 * time.Second

// syncing starts the member cache of gvr if needed and reports whether
// it is still loading: not synced, and started less than
// memberSyncTimeout ago (past that, callers stop waiting for it and read
// the member instead).
func (m *member) syncing(gvr schema.GroupVersionResource) bool {
	_, synced := m.informer(gvr)
	if synced {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return time.Since(m.started[gvr]) < memberSyncTimeout
}

// cached returns the member's copy of ns/name (stripped) from the informer,
// and whether the informer has synced (if not, the answer means nothing
// and the caller reads the member). It never waits: bulk reconciles wait
// for the caches before they start (see Controller.reconcile), a live one
// reads the few objects it needs.
func (m *member) cached(gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, bool) {
	inf, synced := m.informer(gvr)
	if !synced {
		return nil, false
	}
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	o, ok, _ := inf.GetStore().GetByKey(key)
	if !ok {
		return nil, true
	}
	switch o := o.(type) {
	case *memberCopy:
		return o.object(), true
	case *unstructured.Unstructured:
		return o, true
	}
	return nil, true
}

// ensureNamespace creates ns in the member if it is not known to exist.
func (m *member) ensureNamespace(ctx context.Context, ns string) error {
	if ns == "" {
		return nil
	}
	m.mu.Lock()
	known := m.namespaces[ns]
	m.mu.Unlock()
	if known {
		return nil
	}
	_, err := m.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{v1alpha1.LabelManaged: "true"}}}, metav1.CreateOptions{FieldManager: v1alpha1.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s in %s: %w", ns, m.name, err)
	}
	m.mu.Lock()
	m.namespaces[ns] = true
	m.mu.Unlock()
	return nil
}

// probe is one health check result.
type probe struct {
	reachable, ready bool
	message          string
	version          string
	capacity         *v1alpha1.CapacitySummary
}

// probe checks /readyz and sums node capacity.
func (m *member) probe(ctx context.Context, timeout time.Duration) probe {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var p probe
	body, err := m.probeKube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	var status apierrors.APIStatus
	switch {
	case err == nil:
		p.reachable, p.ready = true, true
	case errors.As(err, &status) && status.Status().Code != 0:
		p.reachable = true
		p.message = fmt.Sprintf("/readyz: %s", truncate(string(body), 200))
	default:
		p.message = fmt.Sprintf("unreachable: %v", err)
		return p
	}
	if v, err := m.probeKube.Discovery().ServerVersion(); err == nil {
		p.version = v.GitVersion
	}
	if p.ready {
		if c, err := capacity(ctx, m.kube); err == nil {
			p.capacity = c
		} else {
			p.message = fmt.Sprintf("capacity: %v", err)
		}
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// capacity sums allocatable over ready, schedulable nodes and subtracts the
// requests of the non-terminated pods bound to them.
func capacity(ctx context.Context, kube kubernetes.Interface) (*v1alpha1.CapacitySummary, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	usable := map[string]bool{}
	alloc := corev1.ResourceList{}
	var n int32
	for i := range nodes.Items {
		node := &nodes.Items[i]
		if node.Spec.Unschedulable || !nodeReady(node) {
			continue
		}
		usable[node.Name] = true
		n++
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods} {
			q := alloc[r]
			q.Add(node.Status.Allocatable[r])
			alloc[r] = q
		}
	}
	avail := alloc.DeepCopy()
	if n > 0 {
		pods, err := kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return nil, fmt.Errorf("listing pods: %w", err)
		}
		for i := range pods.Items {
			pod := &pods.Items[i]
			if !usable[pod.Spec.NodeName] || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			for _, c := range pod.Spec.Containers {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					q := avail[r]
					q.Sub(c.Resources.Requests[r])
					avail[r] = q
				}
			}
			q := avail[corev1.ResourcePods]
			q.Sub(resource.MustParse("1"))
			avail[corev1.ResourcePods] = q
		}
	}
	return &v1alpha1.CapacitySummary{Nodes: n, Allocatable: alloc, Available: avail}, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// clusterInfo converts a Cluster into what placement sees.
func clusterInfo(c *v1alpha1.Cluster) *placement.ClusterInfo {
	ci := &placement.ClusterInfo{
		Name: c.Name, Labels: c.Labels, Region: c.Spec.Region, Zone: c.Spec.Zone, Provider: c.Spec.Provider,
		Taints: c.Spec.Taints,
	}
	if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady); cond != nil {
		ci.Ready = cond.Status == metav1.ConditionTrue
	}
	if cap := c.Status.Capacity; cap != nil {
		ci.HasCapacity = true
		ci.AvailableMilliCPU = cap.Available.Cpu().MilliValue()
		ci.AvailableMemory = cap.Available.Memory().Value()
		ci.AvailablePods = cap.Available.Pods().Value()
	}
	return ci
}

// apply server-side-applies body (forced, keelson's field manager) to the
// member and returns the stripped copy the member answered with. The
// answer is decoded straight into the few fields the control plane keeps
// (see memberCopy) instead of a whole unstructured object with its
// managedFields: at hundreds of writes per second that decoding was a
// good part of the control plane's CPU.
func (m *member) apply(ctx context.Context, gvr schema.GroupVersionResource, ns, name string, body []byte) (*unstructured.Unstructured, error) {
	segs := []string{"/api"}
	if gvr.Group != "" {
		segs = []string{"/apis", gvr.Group}
	}
	segs = append(segs, gvr.Version)
	if ns != "" {
		segs = append(segs, "namespaces", ns)
	}
	segs = append(segs, gvr.Resource, name)
	raw, err := m.rc.Patch(types.ApplyPatchType).AbsPath(segs...).
		Param("fieldManager", v1alpha1.FieldManager).Param("force", "true").
		Body(body).Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	return decodeMemberCopy(raw)
}

// wireObject is the part of a member object's JSON that memberCopy keeps.
type wireObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		UID               types.UID         `json:"uid"`
		ResourceVersion   string            `json:"resourceVersion"`
		Generation        int64             `json:"generation"`
		DeletionTimestamp *metav1.Time      `json:"deletionTimestamp"`
		Labels            map[string]string `json:"labels"`
		Annotations       map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int64 `json:"replicas"`
	} `json:"spec"`
	Status json.RawMessage `json:"status"`
}

// decodeMemberCopy decodes a member object's JSON into its stripped form;
// an object whose spec or status is not shaped as expected is decoded in
// full and stripped.
func decodeMemberCopy(raw []byte) (*unstructured.Unstructured, error) {
	var w wireObject
	var st map[string]any
	err := json.Unmarshal(raw, &w)
	if err == nil && len(w.Status) > 0 && string(w.Status) != "null" {
		err = utiljson.Unmarshal(w.Status, &st) // numbers as int64, like unstructured
	}
	if err != nil {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("decoding member object: %w", err)
		}
		mc, _ := stripMemberCopy(u)
		return mc.(*memberCopy).object(), nil
	}
	mc := &memberCopy{apiVersion: w.APIVersion, kind: w.Kind, hash: w.Metadata.Annotations[v1alpha1.AnnotationHash], status: st}
	mc.Name, mc.Namespace, mc.UID, mc.ResourceVersion = w.Metadata.Name, w.Metadata.Namespace, w.Metadata.UID, w.Metadata.ResourceVersion
	mc.Generation, mc.DeletionTimestamp = w.Metadata.Generation, w.Metadata.DeletionTimestamp
	if w.Metadata.Labels[v1alpha1.LabelManaged] == "true" {
		mc.Labels = managedLabels
	}
	if w.Spec.Replicas != nil {
		mc.replicas, mc.hasReplicas = *w.Spec.Replicas, true
	}
	return mc.object(), nil
}

package controller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// hpaGVR is the member resource whose objects may own a workload's
// replicas.
var hpaGVR = schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"}

// scalableGVR maps the kinds an HPA's scaleTargetRef names to the host
// resource to requeue.
var scalableGVR = map[string]schema.GroupVersionResource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"ReplicaSet":  {Group: "apps", Version: "v1", Resource: "replicasets"},
}

// watchHPAs starts the member's HPA informer (every HPA, not only
// keelson's: users create them in the member). A change requeues the
// workload the HPA targets.
func (m *member) watchHPAs() {
	inf := dynamicinformer.NewFilteredDynamicInformer(m.dyn, hpaGVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	h := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return
		}
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
		if gvr, ok := scalableGVR[kind]; ok && name != "" {
			m.onChange(gvr, u.GetNamespace(), name, "", false, false)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: h, UpdateFunc: func(_, o any) { h(o) }, DeleteFunc: h})
	m.mu.Lock()
	m.hpas = inf
	m.mu.Unlock()
	go inf.Run(m.ctx.Done())
}

// memberHPA reports whether an HPA in cluster cl targets the workload k
// (of kind) and the replicas the member's copy has now, which keelson
// then keeps: the member HPA controls them. No HPA informer yet, or no
// member copy yet, means no (the division's value is applied).
func (c *Controller) memberHPA(cl string, k objectKey, kind string) (*int32, string, bool) {
	m := c.cachedMember(cl)
	if m == nil {
		return nil, "", false
	}
	m.mu.Lock()
	inf := m.hpas
	m.mu.Unlock()
	if inf == nil || !inf.HasSynced() {
		return nil, "", false
	}
	hpa := ""
	for _, o := range inf.GetStore().List() {
		u := o.(*unstructured.Unstructured)
		if u.GetNamespace() != k.Namespace {
			continue
		}
		tk, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind")
		tn, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
		if tk == kind && tn == k.Name {
			hpa = u.GetName()
			break
		}
	}
	if hpa == "" {
		return nil, "", false
	}
	cur, synced := m.cached(k.GVR, k.Namespace, k.Name)
	if !synced || cur == nil {
		return nil, "", false
	}
	n, ok, _ := unstructured.NestedInt64(cur.Object, "spec", "replicas")
	if !ok {
		return nil, "", false
	}
	r := int32(n)
	return &r, hpa, true
}

// holding returns, for each cluster of prev, the replicas the member's
// copy of k asks for (spec) and those that run (ready): capacity division
// counts the running ones as capacity available to the object, and keeps
// the asked-for division while it still fits the placement (keepDivision).
func (c *Controller) holding(k objectKey, prev map[string]bool) (spec, ready map[string]int32) {
	spec, ready = map[string]int32{}, map[string]int32{}
	for cl := range prev {
		m := c.cachedMember(cl)
		if m == nil {
			continue
		}
		cur, synced := m.cached(k.GVR, k.Namespace, k.Name)
		if !synced || cur == nil {
			continue
		}
		if n, ok, _ := unstructured.NestedInt64(cur.Object, "spec", "replicas"); ok {
			spec[cl] = int32(n)
		}
		if n, ok, _ := unstructured.NestedInt64(cur.Object, "status", "readyReplicas"); ok {
			ready[cl] = int32(n)
		}
	}
	return spec, ready
}

// keepDivision replaces a fresh capacity division in targets by the one
// the members hold (held) when that one still places exactly total
// replicas on exactly the selected clusters. Capacity moves with every
// pod that starts anywhere; re-dividing on each reconcile would move
// replicas back and forth. The division is redone when the total, the
// policy or the set of feasible clusters changes (failover included).
func keepDivision(targets map[string]*int32, held map[string]int32, total int32) {
	var sum int32
	for cl := range targets {
		n, ok := held[cl]
		if !ok {
			return
		}
		sum += n
	}
	for cl, n := range held {
		if _, ok := targets[cl]; !ok && n > 0 {
			return
		}
	}
	if sum != total {
		return
	}
	for cl := range targets {
		n := held[cl]
		targets[cl] = &n
	}
}

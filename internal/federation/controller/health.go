package controller

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// healthLoop probes every member each HealthInterval.
func (c *Controller) healthLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.HealthInterval)
	defer t.Stop()
	for {
		c.checkClusters(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkClusters probes each cluster once, in parallel, and writes the
// status of those whose health or capacity changed.
func (c *Controller) checkClusters(ctx context.Context) {
	clusters := c.decodeClusters() // own copies: checkCluster writes their status
	done := make(chan struct{}, len(clusters))
	for _, cl := range clusters {
		go func() {
			defer func() { done <- struct{}{} }()
			c.checkCluster(ctx, cl)
		}()
	}
	for range clusters {
		<-done
	}
}

func (c *Controller) checkCluster(ctx context.Context, cl *v1alpha1.Cluster) {
	var p probe
	m, err := c.member(ctx, cl.Name)
	if err != nil {
		p.message = err.Error()
	} else {
		p = m.probe(ctx, c.cfg.HealthTimeout)
	}
	now := metav1.NewTime(c.clock.Now())
	st := cl.Status.DeepCopy()
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: cl.Generation, LastTransitionTime: now})
		v := 0.0
		if ok {
			v = 1
		}
		c.m.health.WithLabelValues(cl.Name, typ).Set(v)
	}
	switch {
	case p.ready:
		set(v1alpha1.ClusterReachable, true, "APIServerAnswered", "")
		set(v1alpha1.ClusterReady, true, "ReadyzOK", "")
	case p.reachable:
		set(v1alpha1.ClusterReachable, true, "APIServerAnswered", "")
		set(v1alpha1.ClusterReady, false, "ReadyzFailed", p.message)
	default:
		set(v1alpha1.ClusterReachable, false, "Unreachable", p.message)
		set(v1alpha1.ClusterReady, false, "Unreachable", p.message)
	}
	if p.version != "" {
		st.KubernetesVersion = p.version
	}
	if p.capacity != nil {
		st.Capacity = p.capacity
	}
	if equality.Semantic.DeepEqual(st, &cl.Status) {
		return
	}
	// A merge patch of the whole status, without a resourceVersion
	// precondition: the informer's copy may lag behind the previous
	// probe's write, and a conflict would drop this probe's news.
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		c.log.Warn("encoding cluster status", "cluster", cl.Name, "err", err)
		return
	}
	if _, err := c.host.Resource(v1alpha1.ClustersGVR).Patch(ctx, cl.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil && ctx.Err() == nil {
		c.log.Warn("updating cluster status", "cluster", cl.Name, "err", err)
	}
}

// onClusterUpdate requeues everything when readiness, taints, labels or
// topology changed (capacity alone matters only to capacity division and
// is picked up on the next change).
func (c *Controller) onClusterUpdate(old, cur any) {
	o, _ := old.(*unstructured.Unstructured)
	n, _ := cur.(*unstructured.Unstructured)
	if o == nil || n == nil {
		c.enqueueAll()
		return
	}
	var oc, nc v1alpha1.Cluster
	if v1alpha1.FromUnstructured(o.Object, &oc) != nil || v1alpha1.FromUnstructured(n.Object, &nc) != nil {
		c.enqueueAll()
		return
	}
	oi, ni := clusterInfo(&oc), clusterInfo(&nc)
	if oi.Ready != ni.Ready || !equality.Semantic.DeepEqual(oc.Spec, nc.Spec) || !equality.Semantic.DeepEqual(oc.Labels, nc.Labels) ||
		oi.HasCapacity != ni.HasCapacity {
		c.enqueueAll()
	}
}

// onClusterDelete (unjoin) stops talking to the member; its objects are
// orphaned: reconciles drop it from their state without deleting.
func (c *Controller) onClusterDelete(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if u, ok := o.(*unstructured.Unstructured); ok {
		c.mu.Lock()
		if m := c.members[u.GetName()]; m != nil {
			m.cancel()
			delete(c.members, u.GetName())
		}
		c.mu.Unlock()
	}
	c.enqueueAll()
}

package controller

import (
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// view is a decoded snapshot of informer contents, rebuilt on the first
// read after the informer changed, so that reconciles do not decode every
// Cluster and policy object for every host object. Values are shared:
// callers must not modify them.
type view[T any] struct {
	mu         sync.Mutex
	gen, built uint64
	ok         bool
	val        T
	build      func() T
}

func newView[T any](build func() T) *view[T] { return &view[T]{build: build} }

// invalidate is called by the informer's handlers (after its store
// changed).
func (v *view[T]) invalidate() {
	v.mu.Lock()
	v.gen++
	v.mu.Unlock()
}

func (v *view[T]) get() T {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ok || v.built != v.gen {
		g := v.gen
		v.val = v.build()
		v.built, v.ok = g, true
	}
	return v.val
}

// invalidateOn registers v's invalidation on every event of inf.
func invalidateOn[T any](inf cache.SharedIndexInformer, v *view[T]) {
	f := func(any) { v.invalidate() }
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, o any) { f(o) }, DeleteFunc: f})
}

// clusterSet is the decoded joined clusters.
type clusterSet struct {
	list   []*v1alpha1.Cluster // sorted by name
	infos  []*placement.ClusterInfo
	byName map[string]*v1alpha1.Cluster
	info   map[string]*placement.ClusterInfo
}

func (c *Controller) buildClusters() clusterSet {
	s := clusterSet{list: c.decodeClusters(), byName: map[string]*v1alpha1.Cluster{}, info: map[string]*placement.ClusterInfo{}}
	for _, cl := range s.list {
		ci := clusterInfo(cl)
		s.infos = append(s.infos, ci)
		s.byName[cl.Name] = cl
		s.info[cl.Name] = ci
	}
	return s
}

// decodeClusters decodes every joined cluster afresh (callers may modify
// the result).
func (c *Controller) decodeClusters() []*v1alpha1.Cluster {
	var out []*v1alpha1.Cluster
	for _, o := range c.clusters.GetStore().List() {
		var cl v1alpha1.Cluster
		if err := v1alpha1.FromUnstructured(o.(*unstructured.Unstructured).Object, &cl); err != nil {
			continue
		}
		out = append(out, &cl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

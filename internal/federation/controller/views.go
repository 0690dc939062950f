package controller

import (
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// view is a decoded snapshot of informer contents, rebuilt when the
// stores changed, so that reconciles do not decode every Cluster and
// policy object for every host object. Whether they changed is read from
// the stores themselves (the resourceVersions of their objects), not from
// event handlers: a handler of one informer may run after another handler
// already queued work that reads the view. Values are shared: callers must
// not modify them.
type view[T any] struct {
	mu     sync.Mutex
	stores []cache.Store
	ok     bool
	seen   string
	val    T
	build  func() T
}

func newView[T any](build func() T, stores ...cache.Store) *view[T] {
	return &view[T]{build: build, stores: stores}
}

// fingerprint identifies the stores' contents.
func (v *view[T]) fingerprint() string {
	var b strings.Builder
	for _, s := range v.stores {
		var ids []string // List's order is not stable
		for _, o := range s.List() {
			if acc, err := meta.Accessor(o); err == nil {
				ids = append(ids, string(acc.GetUID())+"@"+acc.GetResourceVersion())
			}
		}
		sort.Strings(ids)
		b.WriteString(strings.Join(ids, ";"))
		b.WriteByte('|')
	}
	return b.String()
}

func (v *view[T]) get() T {
	v.mu.Lock()
	defer v.mu.Unlock()
	fp := v.fingerprint()
	if !v.ok || fp != v.seen {
		v.val = v.build()
		v.seen, v.ok = fp, true
	}
	return v.val
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

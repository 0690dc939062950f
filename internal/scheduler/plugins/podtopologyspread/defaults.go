package podtopologyspread

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Defaulting types, as kube-scheduler's PodTopologySpreadArgs.
const (
	// DefaultingSystem applies SystemDefaultConstraints.
	DefaultingSystem = "System"
	// DefaultingList applies Args.DefaultConstraints (none: no defaults).
	DefaultingList = "List"
)

// SystemDefaultConstraints are applied to pods without constraints of
// their own, with a selector derived from the Services, ReplicationController,
// ReplicaSet or StatefulSet that select or own the pod: spread over
// hostnames (maxSkew 3) and zones (maxSkew 5), as scores only.
var SystemDefaultConstraints = []v1.TopologySpreadConstraint{
	{TopologyKey: v1.LabelHostname, MaxSkew: 3, WhenUnsatisfiable: v1.ScheduleAnyway},
	{TopologyKey: v1.LabelTopologyZone, MaxSkew: 5, WhenUnsatisfiable: v1.ScheduleAnyway},
}

// Args configure the plugin.
type Args struct {
	// DefaultingType is System (default) or List.
	DefaultingType string `json:"defaultingType,omitempty"`
	// DefaultConstraints apply with List; they must not set a selector.
	DefaultConstraints []v1.TopologySpreadConstraint `json:"defaultConstraints,omitempty"`
}

// listers find the workloads that select a pod; nil fields are skipped.
type listers struct {
	services     corelisters.ServiceLister
	rcs          corelisters.ReplicationControllerLister
	replicaSets  appslisters.ReplicaSetLister
	statefulSets appslisters.StatefulSetLister
}

func newListers(h framework.Handle) *listers {
	ih, ok := h.(framework.InformerHandle)
	if !ok || ih.SharedInformerFactory() == nil {
		return nil
	}
	f := ih.SharedInformerFactory()
	return &listers{
		services:     f.Core().V1().Services().Lister(),
		rcs:          f.Core().V1().ReplicationControllers().Lister(),
		replicaSets:  f.Apps().V1().ReplicaSets().Lister(),
		statefulSets: f.Apps().V1().StatefulSets().Lister(),
	}
}

var (
	rcKind = v1.SchemeGroupVersion.WithKind("ReplicationController")
	rsKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}
	ssKind = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
)

// defaultSelector is the union of the selectors of the Services selecting
// pod and of its controller when that is a ReplicationController,
// ReplicaSet or StatefulSet. Empty when there are none.
func (l *listers) defaultSelector(pod *v1.Pod) labels.Selector {
	set := labels.Set{}
	if svcs, err := l.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, svc := range svcs {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			if labels.SelectorFromValidatedSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				set = labels.Merge(set, svc.Spec.Selector)
			}
		}
	}
	sel := set.AsSelector()
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return sel
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return sel
	}
	var ls *metav1.LabelSelector
	switch gv.WithKind(owner.Kind) {
	case rcKind:
		if rc, err := l.rcs.ReplicationControllers(pod.Namespace).Get(owner.Name); err == nil {
			return labels.Merge(set, rc.Spec.Selector).AsSelector()
		}
		return sel
	case rsKind:
		if rs, err := l.replicaSets.ReplicaSets(pod.Namespace).Get(owner.Name); err == nil {
			ls = rs.Spec.Selector
		}
	case ssKind:
		if ss, err := l.statefulSets.StatefulSets(pod.Namespace).Get(owner.Name); err == nil {
			ls = ss.Spec.Selector
		}
	}
	if ls == nil {
		return sel
	}
	other, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return sel
	}
	if reqs, ok := other.Requirements(); ok {
		sel = sel.Add(reqs...)
	}
	return sel
}

func validateArgs(a *Args) error {
	switch a.DefaultingType {
	case "", DefaultingSystem:
		if len(a.DefaultConstraints) > 0 {
			return fmt.Errorf("defaultConstraints need defaultingType %q", DefaultingList)
		}
	case DefaultingList:
		for i, c := range a.DefaultConstraints {
			if c.LabelSelector != nil {
				return fmt.Errorf("defaultConstraints[%d]: labelSelector must be empty (it is derived from the pod's workload)", i)
			}
			if c.MaxSkew < 1 || c.TopologyKey == "" {
				return fmt.Errorf("defaultConstraints[%d]: need maxSkew >= 1 and a topologyKey", i)
			}
			if c.WhenUnsatisfiable != v1.DoNotSchedule && c.WhenUnsatisfiable != v1.ScheduleAnyway {
				return fmt.Errorf("defaultConstraints[%d]: whenUnsatisfiable %q", i, c.WhenUnsatisfiable)
			}
		}
	default:
		return fmt.Errorf("defaultingType %q: want %q or %q", a.DefaultingType, DefaultingSystem, DefaultingList)
	}
	return nil
}

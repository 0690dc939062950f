package gang

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "gang"

// The PodGroup resource and the label naming a pod's group.
const (
	Group         = "scheduling.keelson.dev"
	Version       = "v1alpha1"
	Kind          = "PodGroup"
	LabelPodGroup = "scheduling.keelson.dev/pod-group"
)

// GVR is the PodGroup resource.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "podgroups"}

// CRD is the PodGroup CustomResourceDefinition (YAML).
//
//go:embed crd.yaml
var CRD []byte

// Defaults.
const (
	DefaultTimeout  = 60 * time.Second
	DefaultCacheTTL = 10 * time.Second
)

func init() {
	framework.Register(framework.KindPermit, Name, "gangs: PodGroup members bound all or nothing (Permit, Unreserve, PostFilter)", New)
}

// Args configure the plugin.
type Args struct {
	// DefaultTimeoutSeconds applies to PodGroups without
	// scheduleTimeoutSeconds (default 60).
	DefaultTimeoutSeconds int32 `json:"defaultTimeoutSeconds,omitempty"`
	// GroupCacheSeconds is how long a fetched PodGroup is trusted before
	// it is read again (default 10).
	GroupCacheSeconds int32 `json:"groupCacheSeconds,omitempty"`
}

// PodGroup is the part of a PodGroup the plugin uses.
type PodGroup struct {
	MinMember int32
	Timeout   time.Duration
}

// GroupSource reads PodGroups; the default reads them through the
// dynamic client.
type GroupSource interface {
	Get(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error)
}

type dynamicSource struct{ c dynamic.Interface }

func (d dynamicSource) Get(ctx context.Context, ns, name string) (*unstructured.Unstructured, error) {
	return d.c.Resource(GVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
}

// ErrNoClient is returned when the plugin has no way to read PodGroups.
var ErrNoClient = errors.New("no dynamic client to read PodGroups")

// Plugin implements PreFilter, PostFilter, Reserve, Permit and
// EnqueueExtensions.
type Plugin struct {
	h              framework.Handle
	source         GroupSource
	now            func() time.Time
	defaultTimeout time.Duration
	cacheTTL       time.Duration

	mu     sync.Mutex
	groups map[string]cachedGroup
	// firstHeld is when each group's first member was held at Permit
	// (cleared when the group is released or rejected).
	firstHeld map[string]time.Time
}

type cachedGroup struct {
	group   *PodGroup
	err     error
	fetched time.Time
}

// New is the factory.
func New(raw json.RawMessage, h framework.Handle) (framework.Plugin, error) {
	var args Args
	if err := framework.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.DefaultTimeoutSeconds < 0 || args.GroupCacheSeconds < 0 {
		return nil, errors.New("defaultTimeoutSeconds and groupCacheSeconds must not be negative")
	}
	p := &Plugin{h: h, now: time.Now, defaultTimeout: DefaultTimeout, cacheTTL: DefaultCacheTTL, groups: map[string]cachedGroup{}, firstHeld: map[string]time.Time{}}
	if args.DefaultTimeoutSeconds > 0 {
		p.defaultTimeout = time.Duration(args.DefaultTimeoutSeconds) * time.Second
	}
	if args.GroupCacheSeconds > 0 {
		p.cacheTTL = time.Duration(args.GroupCacheSeconds) * time.Second
	}
	if dh, ok := h.(framework.DynamicHandle); ok && dh.DynamicClient() != nil {
		p.source = dynamicSource{dh.DynamicClient()}
	}
	return p, nil
}

// SetSource replaces how PodGroups are read (tests, simulations).
func (p *Plugin) SetSource(s GroupSource) { p.source = s }

// SetClock replaces the clock used for the group cache.
func (p *Plugin) SetClock(now func() time.Time) { p.now = now }

// Name implements framework.Plugin.
func (*Plugin) Name() string { return Name }

// GroupName returns the pod's group name, "" when it belongs to none.
func GroupName(pod *v1.Pod) string { return pod.Labels[LabelPodGroup] }

// group returns the pod's PodGroup, cached for cacheTTL (errors too, so a
// missing group is not fetched once per member).
func (p *Plugin) group(ctx context.Context, ns, name string) (*PodGroup, error) {
	key := ns + "/" + name
	now := p.now()
	p.mu.Lock()
	c, ok := p.groups[key]
	p.mu.Unlock()
	if ok && now.Sub(c.fetched) < p.cacheTTL {
		return c.group, c.err
	}
	g, err := p.fetch(ctx, ns, name)
	p.mu.Lock()
	p.groups[key] = cachedGroup{group: g, err: err, fetched: now}
	p.mu.Unlock()
	return g, err
}

func (p *Plugin) fetch(ctx context.Context, ns, name string) (*PodGroup, error) {
	if p.source == nil {
		return nil, ErrNoClient
	}
	u, err := p.source.Get(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("reading pod group %s/%s: %w", ns, name, err)
	}
	minMember, found, err := unstructured.NestedInt64(u.Object, "spec", "minMember")
	if err != nil || !found || minMember < 1 {
		return nil, fmt.Errorf("pod group %s/%s: spec.minMember must be a positive integer", ns, name)
	}
	g := &PodGroup{MinMember: int32(minMember), Timeout: p.defaultTimeout}
	if t, found, err := unstructured.NestedInt64(u.Object, "spec", "scheduleTimeoutSeconds"); err == nil && found && t > 0 {
		g.Timeout = time.Duration(t) * time.Second
	}
	return g, nil
}

// PreFilter rejects members whose PodGroup cannot be read.
func (p *Plugin) PreFilter(ctx context.Context, _ *framework.CycleState, pod *framework.PodInfo) (*framework.PreFilterResult, *framework.Status) {
	name := GroupName(pod.Pod)
	if name == "" {
		return nil, framework.NewStatus(framework.Skip)
	}
	if _, err := p.group(ctx, pod.Pod.Namespace, name); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, ErrNoClient) {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("pod group %q not found", name))
		}
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, err.Error())
	}
	return nil, nil
}

// placed counts the group's members bound or held (assumed) in the
// snapshot, through the snapshot's label index.
func (p *Plugin) placed(pod *v1.Pod, name string) int {
	sel := labels.SelectorFromSet(labels.Set{LabelPodGroup: name})
	n := 0
	p.h.Snapshot().CountMatching(framework.PodQuery{
		Namespaces: map[string]struct{}{pod.Namespace: {}},
		Selector:   sel,
	}, func(_ *framework.NodeInfo, c int) { n += c })
	return n
}

// Permit holds the member until the group has minMember placed members,
// then lets every held member bind.
func (p *Plugin) Permit(ctx context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ string) (*framework.Status, time.Duration) {
	name := GroupName(pod.Pod)
	if name == "" {
		return nil, 0
	}
	g, err := p.group(ctx, pod.Pod.Namespace, name)
	if err != nil {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("pod group %q: %v", name, err)), 0
	}
	// The snapshot predates this pod's own assumption: count it.
	key := pod.Pod.Namespace + "/" + name
	if p.placed(pod.Pod, name)+1 < int(g.MinMember) {
		p.mu.Lock()
		if _, ok := p.firstHeld[key]; !ok {
			p.firstHeld[key] = p.now()
		}
		p.mu.Unlock()
		return framework.NewStatus(framework.Wait), g.Timeout
	}
	released := 0
	p.eachWaiting(pod.Pod.Namespace, name, func(w framework.WaitingPod) {
		w.Allow(Name)
		released++
	})
	p.mu.Lock()
	first, ok := p.firstHeld[key]
	delete(p.firstHeld, key)
	p.mu.Unlock()
	if ok {
		slog.Info("pod group placed", "group", key, "members", released+1, "took", p.now().Sub(first))
	}
	return nil, 0
}

func (p *Plugin) eachWaiting(ns, name string, fn func(framework.WaitingPod)) {
	p.h.IterateOverWaitingPods(func(w framework.WaitingPod) {
		if wp := w.Pod(); wp.Namespace == ns && GroupName(wp) == name {
			fn(w)
		}
	})
}

// Reserve implements framework.ReservePlugin (nothing to do).
func (*Plugin) Reserve(context.Context, *framework.CycleState, *framework.PodInfo, string) *framework.Status {
	return nil
}

// Unreserve releases the whole group when one member's placement is
// undone (rejected at Permit, timed out, failed to bind).
func (p *Plugin) Unreserve(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ string) {
	name := GroupName(pod.Pod)
	if name == "" {
		return
	}
	p.mu.Lock()
	delete(p.firstHeld, pod.Pod.Namespace+"/"+name)
	p.mu.Unlock()
	msg := fmt.Sprintf("pod group %q released: member %s could not be placed", name, pod.Pod.Name)
	p.eachWaiting(pod.Pod.Namespace, name, func(w framework.WaitingPod) { w.Reject(Name, msg) })
}

// PostFilter releases the held members of a group when one member finds
// no node, so they do not keep resources while the group cannot fit. It
// never makes the pod schedulable itself.
func (p *Plugin) PostFilter(_ context.Context, _ *framework.CycleState, pod *framework.PodInfo, _ *framework.Diagnosis) (*framework.PostFilterResult, *framework.Status) {
	name := GroupName(pod.Pod)
	if name == "" {
		return nil, framework.NewStatus(framework.Unschedulable)
	}
	released := 0
	msg := fmt.Sprintf("pod group %q released: member %s fits on no node", name, pod.Pod.Name)
	p.eachWaiting(pod.Pod.Namespace, name, func(w framework.WaitingPod) {
		w.Reject(Name, msg)
		released++
	})
	if released == 0 {
		return nil, framework.NewStatus(framework.Unschedulable)
	}
	return nil, framework.NewStatus(framework.Unschedulable, fmt.Sprintf("Released %d waiting member(s) of pod group %q.", released, name))
}

// EventsToRegister: a new member, room freed, nodes added or changed.
func (*Plugin) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.EventUnscheduledPod, Action: framework.Add | framework.Update},
		{Resource: framework.EventAssignedPod, Action: framework.Delete},
		{Resource: framework.EventNode, Action: framework.Add | framework.Update},
	}
}

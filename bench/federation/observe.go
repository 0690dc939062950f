package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// observer watches Deployments in every member and keeps, per object, the
// latest copy in each member; a tracker decides when an object is done.
type observer struct {
	mu      sync.Mutex
	members int
	state   map[string][]*appsv1.Deployment // ns/name → per member (nil: absent)
	tr      *tracker
}

// tracker records when each expected object first satisfies done.
type tracker struct {
	ns       string
	expected int
	done     func(name string, copies []*appsv1.Deployment) bool
	at       map[string]time.Time
	all      chan struct{}
}

func newObserver(ctx context.Context, members []kubernetes.Interface) (*observer, error) {
	o := &observer{members: len(members), state: map[string][]*appsv1.Deployment{}}
	for i, c := range members {
		f := informers.NewSharedInformerFactory(c, 0)
		inf := f.Apps().V1().Deployments().Informer()
		// Only what the trackers read.
		_ = inf.SetTransform(func(x any) (any, error) {
			if d, ok := x.(*appsv1.Deployment); ok {
				d.ManagedFields = nil
				d.Status = appsv1.DeploymentStatus{}
			}
			return x, nil
		})
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(x any) { o.on(i, x, false) },
			UpdateFunc: func(_, x any) { o.on(i, x, false) },
			DeleteFunc: func(x any) { o.on(i, x, true) },
		})
		if err != nil {
			return nil, err
		}
		f.Start(ctx.Done())
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return nil, fmt.Errorf("member %d: deployment informer did not sync", i)
		}
	}
	return o, nil
}

func (o *observer) on(member int, x any, deleted bool) {
	if d, ok := x.(cache.DeletedFinalStateUnknown); ok {
		x = d.Obj
	}
	d, ok := x.(*appsv1.Deployment)
	if !ok {
		return
	}
	now := time.Now()
	key := d.Namespace + "/" + d.Name
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.state[key]
	if s == nil {
		s = make([]*appsv1.Deployment, o.members)
		o.state[key] = s
	}
	if deleted {
		s[member] = nil
	} else {
		s[member] = d
	}
	o.check(d.Namespace, d.Name, s, now)
}

func (o *observer) check(ns, name string, s []*appsv1.Deployment, now time.Time) {
	t := o.tr
	if t == nil || ns != t.ns {
		return
	}
	if _, ok := t.at[name]; ok {
		return
	}
	if t.done(name, s) {
		t.at[name] = now
		if len(t.at) == t.expected {
			close(t.all)
		}
	}
}

// track starts a tracker over namespace ns; objects already satisfying
// done count at once.
func (o *observer) track(ns string, expected int, done func(name string, copies []*appsv1.Deployment) bool) *tracker {
	t := &tracker{ns: ns, expected: expected, done: done, at: map[string]time.Time{}, all: make(chan struct{})}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tr = t
	now := time.Now()
	for key, s := range o.state {
		if n, name, ok := cut(key); ok && n == ns {
			o.check(n, name, s, now)
		}
	}
	return t
}

// wait blocks until every expected object is done or timeout passes; it
// returns the done times.
func (o *observer) wait(ctx context.Context, t *tracker, timeout time.Duration) (map[string]time.Time, error) {
	select {
	case <-t.all:
	case <-time.After(timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tr = nil
	out := make(map[string]time.Time, len(t.at))
	for k, v := range t.at {
		out[k] = v
	}
	if len(out) < t.expected {
		return out, fmt.Errorf("%d of %d objects done after %s", len(out), t.expected, timeout)
	}
	return out, nil
}

// forget drops the state of namespace ns (after its objects are deleted).
func (o *observer) forget(ns string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for key := range o.state {
		if n, _, _ := cut(key); n == ns {
			delete(o.state, key)
		}
	}
}

func cut(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

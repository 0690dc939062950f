package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// The BindingCeiling step measures how fast this kube-apiserver (and its
// store) binds pods when nothing schedules them: pending pods (of a
// scheduler that does not run) are bound by posting their bindings
// directly, with a fixed number in flight and no client rate limit. It
// is the ceiling any scheduler's binding rate meets on this machine.

// ceilingRun is one variant of the step.
type ceilingRun struct {
	inFlight int
	protobuf bool
	// events: each binding is followed by a Scheduled event (core/v1, as
	// keelson's recorder posts it), as a scheduler sends them.
	events bool
}

func (c ceilingRun) String() string {
	ct := "JSON"
	if c.protobuf {
		ct = "protobuf"
	}
	s := fmt.Sprintf("%d in flight, %s", c.inFlight, ct)
	if c.events {
		s += ", binding + event"
	}
	return s
}

type ceilingResult struct {
	run            ceilingRun
	pods           int
	perSec         float64
	apiCPUPer1000  float64
	loadBefore     string
	loadAfter      string
	requestsPerPod float64
}

var ceilingRuns = []ceilingRun{
	{inFlight: 64}, {inFlight: 64, protobuf: true}, {inFlight: 256, protobuf: true},
	{inFlight: 64, protobuf: true, events: true}, {inFlight: 256, protobuf: true, events: true},
}

func (b *bench) bindingCeiling(ctx context.Context) ([]ceilingResult, error) {
	var out []ceilingResult
	for i, run := range ceilingRuns {
		r, err := b.ceilingOne(ctx, fmt.Sprintf("ceiling-%d-%d", i, time.Now().UnixNano()%100000), run)
		if err != nil {
			return out, fmt.Errorf("binding ceiling (%s): %w", run, err)
		}
		b.log.Info("binding ceiling", "run", run.String(), "pods", r.pods, "bindings/s", fmt.Sprintf("%.1f", r.perSec),
			"apiCPU/1000", fmt.Sprintf("%.2f", r.apiCPUPer1000), "requestsPerPod", fmt.Sprintf("%.2f", r.requestsPerPod), "load", r.loadBefore+" → "+r.loadAfter)
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) ceilingOne(ctx context.Context, ns string, run ceilingRun) (ceilingResult, error) {
	r := ceilingResult{run: run, pods: b.sz.ceiling}
	if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return r, err
	}
	defer func() {
		if err := b.cleanup(ctx, ns); err != nil {
			b.log.Warn("cleanup", "ns", ns, "err", err)
		}
	}()
	if _, err := b.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		return r, err
	}
	// The pods of the anti-affinity workload, for a scheduler that does
	// not run.
	pods := make([]*corev1.Pod, r.pods)
	if err := parallel(ctx, r.pods, 16, func(i int) error {
		p := upstreamPod(ns, fmt.Sprintf("pending-%05d", i), "bench-nobody")
		got, err := b.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		pods[i] = got
		return err
	}); err != nil {
		return r, fmt.Errorf("creating pending pods: %w", err)
	}
	cfg := rest.CopyConfig(b.env.Config)
	cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	if run.protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return r, err
	}
	// One request first, so that the connection is open before timing.
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		return r, err
	}
	req0, err := b.apiRequests(ctx)
	if err != nil {
		return r, err
	}
	r.loadBefore = loadAvg()
	api0 := cpuSeconds(b.peerPids())
	start := time.Now()
	var mu sync.Mutex
	var firstErr error
	err = parallel(ctx, r.pods, run.inFlight, func(i int) error {
		p := pods[i]
		node := fmt.Sprintf("node-%05d", i*b.sz.nodes/r.pods)
		bind := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Name, UID: p.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
		if err := client.CoreV1().Pods(ns).Bind(ctx, bind, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("binding %s: %w", p.Name, err)
		}
		if run.events {
			now := metav1.Now()
			ev := &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s.%x", p.Name, now.UnixNano())},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID, APIVersion: "v1"},
				Reason:         "Scheduled", Message: fmt.Sprintf("Successfully assigned %s/%s to %s", ns, p.Name, node),
				Source: corev1.EventSource{Component: "bench"}, FirstTimestamp: now, LastTimestamp: now, Count: 1, Type: corev1.EventTypeNormal,
			}
			if _, err := client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
			}
		}
		return nil
	})
	took := time.Since(start)
	api1 := cpuSeconds(b.peerPids())
	r.loadAfter = loadAvg()
	if err != nil {
		return r, err
	}
	if firstErr != nil {
		return r, fmt.Errorf("posting events: %w", firstErr)
	}
	req1, err := b.apiRequests(ctx)
	if err != nil {
		return r, err
	}
	r.perSec = float64(r.pods) / took.Seconds()
	r.apiCPUPer1000 = (api1 - api0) * 1000 / float64(r.pods)
	r.requestsPerPod = req1.sub(req0).perPod(r.pods)
	return r, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

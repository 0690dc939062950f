package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// latencyResult is the outcome of a propagation scenario.
type latencyResult struct {
	objects, members int
	p50, p90, p99    time.Duration
	max              time.Duration
	wall             time.Duration // first create call to last object done
	writes           float64       // member writes the control plane made
	writesPerSec     float64
	cpuSecs          float64 // control-plane CPU during the scenario
	memberCPU        float64 // members' apiservers and stores, CPU-s
	hostCPU          float64 // the host's apiserver and store, CPU-s
	rss              memory
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// allPresent is done when every member in want holds the object.
func allPresent(want []int) func(string, []*appsv1.Deployment) bool {
	return func(name string, copies []*appsv1.Deployment) bool {
		if name == "warm" {
			return false
		}
		for _, i := range want {
			if copies[i] == nil {
				return false
			}
		}
		return true
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// warm creates one object in ns and waits until it is in the members
// want, so that the control plane watches the kind before measuring.
func (b *bench) warm(ctx context.Context, ns string, want []int) error {
	tr := b.obs.track(ns, 1, func(name string, copies []*appsv1.Deployment) bool {
		if name != "warm" {
			return false
		}
		for _, i := range want {
			if copies[i] == nil {
				return false
			}
		}
		return true
	})
	if _, err := b.hkube.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "warm", 1), metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := b.obs.wait(ctx, tr, 2*time.Minute)
	return err
}

// propagate runs one propagation scenario: create (by create) n objects
// in a new namespace, each to every member, and measure until all are
// everywhere.
func (b *bench) propagate(ctx context.Context, ns string, n int, create func(ctx context.Context) (map[string]time.Time, error)) (*latencyResult, error) {
	if err := b.namespace(ctx, ns); err != nil {
		return nil, err
	}
	if err := b.policy(ctx, ns, map[string]any{}, nil); err != nil {
		return nil, err
	}
	all := seq(0, b.cfg.members)
	if err := b.warm(ctx, ns, all); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	r := &latencyResult{objects: n, members: b.cfg.members}
	w0, _, err := b.writes(ctx)
	if err != nil {
		return nil, err
	}
	cpu0 := cpuSeconds(b.cp.pid())
	m0, h0 := b.serverCPU()
	tr := b.obs.track(ns, n, allPresent(all))
	var prof sync.WaitGroup
	if b.cfg.profileDir != "" {
		prof.Go(func() {
			f := filepath.Join(b.cfg.profileDir, "federation-"+ns+".pprof")
			if err := b.cp.profile(ctx, 10, f); err != nil {
				b.log.Warn("profile", "err", err)
			}
		})
	}
	start := time.Now()
	created, err := create(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating: %w", err)
	}
	done, err := b.obs.wait(ctx, tr, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	var last time.Time
	var lat []time.Duration
	for name, t := range done {
		lat = append(lat, max(0, t.Sub(created[name])))
		if t.After(last) {
			last = t
		}
	}
	r.wall = last.Sub(start)
	r.p50, r.p90, r.p99, r.max = percentile(lat, .5), percentile(lat, .9), percentile(lat, .99), percentile(lat, 1)
	w1, _, err := b.writes(ctx)
	if err != nil {
		return nil, err
	}
	r.writes = w1 - w0
	r.writesPerSec = r.writes / r.wall.Seconds()
	r.cpuSecs = cpuSeconds(b.cp.pid()) - cpu0
	m1, h1 := b.serverCPU()
	r.memberCPU, r.hostCPU = m1-m0, h1-h0
	r.rss = procMemory(b.cp.pid())
	prof.Wait()
	b.log.Info("propagation", "ns", ns, "objects", n, "p50", r.p50, "p99", r.p99, "wall", r.wall.Round(time.Millisecond),
		"writes", r.writes, "writes/s", fmt.Sprintf("%.0f", r.writesPerSec), "cpu-s", fmt.Sprintf("%.1f", r.cpuSecs),
		"member-cpu-s", fmt.Sprintf("%.1f", r.memberCPU), "host-cpu-s", fmt.Sprintf("%.1f", r.hostCPU), "load", loadAvg())
	start = time.Now()
	if err := b.deleteAll(ctx, ns); err != nil {
		return r, fmt.Errorf("deleting: %w", err)
	}
	b.log.Info("deleted", "ns", ns, "took", time.Since(start).Round(time.Millisecond))
	return r, nil
}

func (b *bench) burst(ctx context.Context) error {
	r, err := b.propagate(ctx, "burst", b.cfg.burst, func(ctx context.Context) (map[string]time.Time, error) {
		return b.create(ctx, "burst", b.cfg.burst, 32, 1)
	})
	b.res.burst = r
	return err
}

func (b *bench) pacedRun(ctx context.Context) error {
	ns := "paced"
	r, err := b.propagate(ctx, ns, b.cfg.paced, func(ctx context.Context) (map[string]time.Time, error) {
		var mu sync.Mutex
		created := map[string]time.Time{}
		var wg sync.WaitGroup
		var first error
		sem := make(chan struct{}, 64)
		t0 := time.Now()
		for i := range b.cfg.paced {
			at := t0.Add(time.Duration(float64(i) / b.cfg.pacedRate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				name := objName(i)
				_, err := b.hkube.AppsV1().Deployments(ns).Create(ctx, deployment(ns, name, 1), metav1.CreateOptions{})
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				if err != nil && first == nil {
					first = err
				}
				created[name] = now
			})
		}
		wg.Wait()
		return created, first
	})
	b.res.paced = r
	return err
}

// restartResult is the outcome of the restart scenario.
type restartResult struct {
	objects, members     int
	createWall           time.Duration // creating the host objects
	propagateWall        time.Duration // first create to all in every member
	writes, writesPerSec float64
	settled              memory        // control plane after the initial propagation
	startup              time.Duration // process start to caches synced and workers running
	changeLatency        time.Duration // change made right after startup → in every member
	caughtUp             time.Duration // restart to an empty queue
	writesAfter          float64       // member writes of the new process until caught up
	skippedAfter         float64
	hostWritesAfter      float64 // host writes of the new process until caught up
	after                memory  // new process once caught up
}

func (b *bench) restart(ctx context.Context) error {
	ns := "scale"
	k := min(b.cfg.restartMembers, b.cfg.members)
	r := &restartResult{objects: b.cfg.restartObjects, members: k}
	b.res.restart = r
	if err := b.namespace(ctx, ns); err != nil {
		return err
	}
	var names []any
	for i := range k {
		names = append(names, memberName(i))
	}
	if err := b.policy(ctx, ns, map[string]any{"clusterAffinity": map[string]any{"clusterNames": names}}, nil); err != nil {
		return err
	}
	want := seq(0, k)
	if err := b.warm(ctx, ns, want); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	w0, _, err := b.writes(ctx)
	if err != nil {
		return err
	}
	tr := b.obs.track(ns, r.objects, allPresent(want))
	start := time.Now()
	if _, err := b.create(ctx, ns, r.objects, 32, 1); err != nil {
		return fmt.Errorf("creating: %w", err)
	}
	r.createWall = time.Since(start)
	b.log.Info("restart scenario: objects created", "objects", r.objects, "took", r.createWall.Round(time.Millisecond))
	done, err := b.obs.wait(ctx, tr, 20*time.Minute)
	if err != nil {
		return err
	}
	for _, t := range done {
		r.propagateWall = max(r.propagateWall, t.Sub(start))
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	w1, _, err := b.writes(ctx)
	if err != nil {
		return err
	}
	r.writes = w1 - w0
	r.writesPerSec = r.writes / r.propagateWall.Seconds()
	r.settled = procMemory(b.cp.pid())
	if b.cfg.profileDir != "" {
		if err := b.cp.heapProfile(ctx, filepath.Join(b.cfg.profileDir, "federation-heap.pprof")); err != nil {
			b.log.Warn("heap profile", "err", err)
		}
	}
	b.log.Info("restart scenario: propagated", "took", r.propagateWall.Round(time.Millisecond), "writes", r.writes,
		"writes/s", fmt.Sprintf("%.0f", r.writesPerSec), "rssMiB", fmt.Sprintf("%.0f", r.settled.rss), "hwmMiB", fmt.Sprintf("%.0f", r.settled.hwm))

	// Restart, and change one object as soon as the new process runs
	// (while it goes over the 10,000 it already knows).
	b.cp.stop()
	b.cp = nil
	changed := objName(r.objects - 1)
	tr = b.obs.track(ns, 1, func(name string, copies []*appsv1.Deployment) bool {
		if name != changed {
			return false
		}
		for _, i := range want {
			if copies[i] == nil || copies[i].Spec.Template.Spec.Containers[0].Image != "registry.invalid/app:2" {
				return false
			}
		}
		return true
	})
	var prof sync.WaitGroup
	cp, err := startControlPlane(ctx, b.bin, b.host.Kubeconfig, b.dir, b.cfg.cpArgs)
	if err != nil {
		return fmt.Errorf("restarting control plane: %w", err)
	}
	b.cp = cp
	r.startup = time.Since(cp.started)
	if b.cfg.profileDir != "" {
		prof.Go(func() {
			if err := cp.profile(ctx, 10, filepath.Join(b.cfg.profileDir, "federation-restart.pprof")); err != nil {
				b.log.Warn("profile", "err", err)
			}
		})
	}
	d, err := b.hkube.AppsV1().Deployments(ns).Get(ctx, changed, metav1.GetOptions{})
	if err != nil {
		return err
	}
	d.Spec.Template.Spec.Containers[0].Image = "registry.invalid/app:2"
	if _, err := b.hkube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		return err
	}
	changedAt := time.Now()
	got, err := b.obs.wait(ctx, tr, 10*time.Minute)
	if err != nil {
		return fmt.Errorf("change after restart: %w", err)
	}
	r.changeLatency = got[changed].Sub(changedAt)
	if err := b.settle(ctx); err != nil {
		return err
	}
	r.caughtUp = time.Since(cp.started) - 2*time.Second // settle waits 2 s of quiet
	r.writesAfter, r.skippedAfter, err = b.writes(ctx)
	if err != nil {
		return err
	}
	r.hostWritesAfter = b.hostWrites(ctx)
	r.after = procMemory(cp.pid())
	prof.Wait()
	b.log.Info("restart scenario: restarted", "change", r.changeLatency.Round(time.Millisecond), "caught-up", r.caughtUp.Round(time.Millisecond),
		"writes", r.writesAfter, "skipped", r.skippedAfter, "rssMiB", fmt.Sprintf("%.0f", r.after.rss))
	return nil
}

// settle waits until the control plane's queue is empty and its member
// writes did not move for 2 s.
func (b *bench) settle(ctx context.Context) error {
	var last float64 = -1
	quietSince := time.Now()
	return poll(ctx, 15*time.Minute, func() bool {
		w, _, err := b.writes(ctx)
		if err != nil {
			return false
		}
		if w != last || b.queueDepth(ctx) != 0 {
			last, quietSince = w, time.Now()
			return false
		}
		return time.Since(quietSince) >= 2*time.Second
	})
}

// failoverResult is the outcome of the failover scenario.
type failoverResult struct {
	objects, replicas, members int
	victim                     string
	detect                     time.Duration // store killed → Cluster Ready=False seen
	moved                      time.Duration // Ready=False seen → last workload moved
	p50                        time.Duration
	writes                     float64
}

func (b *bench) failover(ctx context.Context) error {
	ns := "failover"
	first := min(b.cfg.restartMembers, b.cfg.members)
	if b.cfg.members-first < 2 || !b.cfg.want("restart") {
		first = 0
	}
	sel := seq(first, b.cfg.members)
	R := int32(b.cfg.failoverReplicas)
	r := &failoverResult{objects: b.cfg.failoverObjects, replicas: int(R), members: len(sel)}
	b.res.failover = r
	if err := b.namespace(ctx, ns); err != nil {
		return err
	}
	var names []any
	for _, i := range sel {
		names = append(names, memberName(i))
	}
	if err := b.policy(ctx, ns, map[string]any{
		"clusterAffinity":   map[string]any{"clusterNames": names},
		"replicaScheduling": map[string]any{"type": "Divided"},
	}, map[string]any{"tolerationSeconds": int64(0)}); err != nil {
		return err
	}
	sum := func(copies []*appsv1.Deployment, in []int) (int32, bool) {
		var s int32
		for _, i := range in {
			if copies[i] == nil || copies[i].Spec.Replicas == nil {
				return 0, false
			}
			s += *copies[i].Spec.Replicas
		}
		return s, true
	}
	tr := b.obs.track(ns, r.objects, func(name string, copies []*appsv1.Deployment) bool {
		s, ok := sum(copies, sel)
		return name != "warm" && ok && s == R
	})
	if _, err := b.create(ctx, ns, r.objects, 32, R); err != nil {
		return fmt.Errorf("creating: %w", err)
	}
	if _, err := b.obs.wait(ctx, tr, 10*time.Minute); err != nil {
		return fmt.Errorf("initial placement: %w", err)
	}
	if err := b.settle(ctx); err != nil {
		return err
	}
	victim := sel[len(sel)-1]
	healthy := sel[:len(sel)-1]
	r.victim = memberName(victim)
	w0, _, err := b.writes(ctx)
	if err != nil {
		return err
	}
	tr = b.obs.track(ns, r.objects, func(name string, copies []*appsv1.Deployment) bool {
		s, ok := sum(copies, healthy)
		return name != "warm" && ok && s == R
	})
	killed := time.Now()
	b.members[victim].Store.Kill()
	var unready time.Time
	if err := poll(ctx, 2*time.Minute, func() bool {
		u, err := b.hdyn.Resource(v1alpha1.ClustersGVR).Get(ctx, r.victim, metav1.GetOptions{})
		if err != nil || clusterReady(u) {
			return false
		}
		unready = time.Now()
		return true
	}); err != nil {
		return fmt.Errorf("victim never turned unready: %w", err)
	}
	r.detect = unready.Sub(killed)
	done, err := b.obs.wait(ctx, tr, 10*time.Minute)
	if err != nil {
		return fmt.Errorf("moving: %w", err)
	}
	var last time.Time
	var lat []time.Duration
	for _, t := range done {
		last = maxTime(last, t)
		lat = append(lat, max(0, t.Sub(unready)))
	}
	r.moved = max(0, last.Sub(unready))
	r.p50 = percentile(lat, .5)
	w1, _, err := b.writes(ctx)
	if err == nil {
		r.writes = w1 - w0
	}
	b.log.Info("failover", "victim", r.victim, "detect", r.detect.Round(time.Millisecond), "moved", r.moved.Round(time.Millisecond), "writes", r.writes)
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ceilingResult is the same member writes made directly by this program,
// without the control plane: what the member apiservers take on this
// machine.
type ceilingResult struct {
	objects, members int
	writesPerSec     float64 // of the apply pass
	apply, create    ceilingPass
}

// ceilingPass is one kind of write sent straight to the members.
type ceilingPass struct {
	wall         time.Duration
	writesPerSec float64
	memberCPU    float64 // members' apiservers and stores, CPU-s
	load         string
}

// ceiling server-side-applies n Deployments to every member from this
// process (64 concurrent requests), the write the control plane makes,
// and deletes them again; then does the same with creates.
func (b *bench) ceiling(ctx context.Context) error {
	ns := "ceiling"
	n := b.cfg.burst
	r := &ceilingResult{objects: n, members: b.cfg.members}
	b.res.ceiling = r
	for _, k := range b.mkube {
		if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	force := true
	// The same writes twice: as forced server-side applies (what the
	// control plane sends) and as plain creates, each into empty members.
	for _, pass := range []struct {
		name string
		dst  *ceilingPass
		op   func(k kubernetes.Interface, d *appsv1.Deployment) error
	}{
		{"apply", &r.apply, func(k kubernetes.Interface, d *appsv1.Deployment) error {
			body, err := json.Marshal(d)
			if err != nil {
				return err
			}
			_, err = k.AppsV1().Deployments(ns).Patch(ctx, d.Name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "bench", Force: &force})
			return err
		}},
		{"create", &r.create, func(k kubernetes.Interface, d *appsv1.Deployment) error {
			_, err := k.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{FieldManager: "bench"})
			return err
		}},
	} {
		m0, _ := b.serverCPU()
		start := time.Now()
		err := parallel(ctx, n*b.cfg.members, 64, func(i int) error {
			d := deployment(ns, objName(i/b.cfg.members), 1)
			d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
			d.Labels[v1alpha1.LabelManaged] = "true"
			return pass.op(b.mkube[i%b.cfg.members], d)
		})
		pass.dst.wall = time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: %w", pass.name, err)
		}
		m1, _ := b.serverCPU()
		pass.dst.memberCPU = m1 - m0
		pass.dst.writesPerSec = float64(n*b.cfg.members) / pass.dst.wall.Seconds()
		pass.dst.load = loadAvg()
		b.log.Info("ceiling", "op", pass.name, "writes", n*b.cfg.members, "wall", pass.dst.wall.Round(time.Millisecond),
			"writes/s", fmt.Sprintf("%.0f", pass.dst.writesPerSec), "member-cpu-s", fmt.Sprintf("%.1f", pass.dst.memberCPU), "load", pass.dst.load)
		for _, k := range b.mkube {
			if err := k.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
				return err
			}
		}
		if err := poll(ctx, 2*time.Minute, func() bool {
			for _, k := range b.mkube {
				l, err := k.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{Limit: 1})
				if err != nil || len(l.Items) > 0 {
					return false
				}
			}
			return true
		}); err != nil {
			return fmt.Errorf("waiting for the %s pass's objects to go: %w", pass.name, err)
		}
	}
	r.writesPerSec = r.apply.writesPerSec
	b.obs.forget(ns)
	return nil
}

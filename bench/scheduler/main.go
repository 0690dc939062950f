package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// sizes of a mode.
type sizes struct {
	nodes, basic, anti, affinity, spread, preempt, gang int
}

var modes = map[string]sizes{
	"quick": {nodes: 500, basic: 1000, anti: 400, affinity: 1000, spread: 1000, preempt: 200, gang: 200},
	"full":  {nodes: 5000, basic: 5000, anti: 2000, affinity: 5000, spread: 5000, preempt: 1000, gang: 1000},
}

const (
	zoneKey  = "topology.kubernetes.io/zone"
	hostKey  = "kubernetes.io/hostname"
	zones    = 10
	nodeCPU  = 32
	clientQP = 500
	clientBu = 1000
)

func main() {
	bin := flag.String("bin", "bin", "directory with keelson, kube-apiserver and kube-scheduler")
	mode := flag.String("mode", "quick", "quick (500 nodes) or full (5,000 nodes)")
	out := flag.String("out", "docs/benchmarks-scheduler.md", "markdown report to write")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all)")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, *bin, *mode, *out, *only); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

type bench struct {
	log    *slog.Logger
	env    *testenv.Env
	client kubernetes.Interface
	dyn    dynamic.Interface
	sz     sizes
	cfg    string // keelson scheduler config file
}

// result of one (workload, scheduler) run.
type result struct {
	workload, scheduler string
	pods                int
	podsPerSec          float64
	cpuPer1000          float64
	p50, p99            time.Duration
	rssMiB              float64
	note                string
}

func run(ctx context.Context, log *slog.Logger, bin, mode, out, only string) error {
	sz, ok := modes[mode]
	if !ok {
		return fmt.Errorf("unknown mode %q", mode)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	env, err := testenv.New(ctx, testenv.Options{
		Store: testenv.StoreKeelson, BinDir: abs, Logger: log,
		APIServerArgs: []string{testenv.DisableNodeTaintAdmission, "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"},
	})
	if err != nil {
		return fmt.Errorf("starting environment: %w", err)
	}
	defer env.Close()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b := &bench{log: log, env: env, client: client, dyn: dyn, sz: sz, cfg: filepath.Join(env.Dir, "keelson-scheduler.yaml")}
	if err := os.WriteFile(b.cfg, fmt.Appendf(nil, "apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nclientQPS: %d\nclientBurst: %d\n", clientQP, clientBu), 0o600); err != nil {
		return err
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	workloads := []struct {
		name string
		fn   func(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error)
		kube bool
	}{
		{"SchedulingBasic", b.basic, true},
		{"SchedulingPodAntiAffinity", b.antiAffinity, true},
		{"SchedulingPodAffinity", b.affinity, true},
		{"TopologySpreading", b.spreading, true},
		{"Preemption", b.preemption, true},
		{"Gang", b.gang, false},
	}
	var results []result
	for _, w := range workloads {
		if only != "" && !slices.Contains(strings.Split(only, ","), w.name) {
			continue
		}
		for _, sched := range []string{"keelson", "keelson×3", "kube-scheduler"} {
			if sched == "kube-scheduler" && !w.kube {
				continue
			}
			r, err := b.runOne(ctx, w.name, sched, w.fn)
			if err != nil {
				return fmt.Errorf("%s with %s: %w", w.name, sched, err)
			}
			log.Info("result", "workload", r.workload, "scheduler", r.scheduler, "pods", r.pods, "pods/s", fmt.Sprintf("%.1f", r.podsPerSec),
				"cpu-s/1000", fmt.Sprintf("%.2f", r.cpuPer1000), "p50", r.p50, "p99", r.p99, "rssMiB", fmt.Sprintf("%.0f", r.rssMiB))
			results = append(results, r)
		}
	}
	return writeReport(out, mode, sz, results)
}

// setup creates the nodes, priority classes and the PodGroup CRD.
func (b *bench) setup(ctx context.Context) error {
	start := time.Now()
	err := parallel(ctx, b.sz.nodes, 32, func(i int) error {
		name := fmt.Sprintf("node-%05d", i)
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{hostKey: name, zoneKey: fmt.Sprintf("zone-%d", i%zones)}},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: *resource.NewQuantity(nodeCPU, resource.DecimalSI), corev1.ResourceMemory: resource.MustParse("256Gi"),
					corev1.ResourcePods: *resource.NewQuantity(110, resource.DecimalSI),
				},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			},
		}
		n.Status.Allocatable = n.Status.Capacity.DeepCopy()
		got, err := b.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		got.Status = n.Status
		_, err = b.client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("creating nodes: %w", err)
	}
	b.log.Info("nodes created", "nodes", b.sz.nodes, "took", time.Since(start).Round(time.Millisecond))
	for _, pc := range []schedulingv1.PriorityClass{{ObjectMeta: metav1.ObjectMeta{Name: "low"}, Value: 100}, {ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}} {
		if _, err := b.client.SchedulingV1().PriorityClasses().Create(ctx, &pc, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	var obj map[string]any
	if err := yaml.Unmarshal(gang.CRD, &obj); err != nil {
		return err
	}
	crd := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := b.dyn.Resource(crd).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("installing PodGroup CRD: %w", err)
	}
	return poll(ctx, time.Minute, func() bool {
		_, err := b.dyn.Resource(gang.GVR).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil
	})
}

// procs are the running scheduler processes of a run.
type procs struct {
	pids []int
	stop func()
}

func (b *bench) start(ctx context.Context, sched string) (*procs, string, error) {
	switch sched {
	case "kube-scheduler":
		ks, err := b.env.StartKubeScheduler(ctx, clientQP, clientBu)
		if err != nil {
			return nil, "", err
		}
		return &procs{pids: []int{ks.Pid()}, stop: func() { _ = ks.Stop() }}, corev1.DefaultSchedulerName, nil
	default:
		n := 1
		if sched == "keelson×3" {
			n = 3
		}
		var ps []*testenv.KeelsonScheduler
		p := &procs{}
		for i := range n {
			ks, err := b.env.StartKeelsonScheduler(ctx, fmt.Sprintf("keelson-%d", i), "--config="+b.cfg)
			if err != nil {
				return nil, "", err
			}
			ps = append(ps, ks)
			p.pids = append(p.pids, ks.Pid())
		}
		p.stop = func() {
			for _, ks := range ps {
				_ = ks.Stop()
			}
		}
		return p, "keelson", nil
	}
}

func (b *bench) runOne(ctx context.Context, workload, sched string, fn func(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error)) (result, error) {
	r := result{workload: workload, scheduler: sched}
	ns := strings.ToLower(fmt.Sprintf("%s-%d", workload, time.Now().UnixNano()%100000))
	if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return r, err
	}
	defer b.cleanup(ctx, ns)
	// No controller manager runs: the ServiceAccount admission wants the
	// namespace's default account to exist.
	if _, err := b.client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		return r, err
	}
	p, schedName, err := b.start(ctx, sched)
	if err != nil {
		return r, err
	}
	defer p.stop()
	// The scheduler is ready once it has bound a probe pod.
	if err := b.probe(ctx, ns, schedName); err != nil {
		return r, err
	}
	pods, err := fn(ctx, ns, schedName)
	if err != nil {
		return r, err
	}
	r.pods = len(pods)
	cpu0 := cpuSeconds(p.pids)
	created := make([]time.Time, len(pods))
	bound := make([]time.Time, len(pods))
	index := map[string]int{}
	for i, pod := range pods {
		index[pod.Name] = i
	}
	// Bindings are seen through an informer (it re-watches on its own)
	// started before the first creation.
	var mu sync.Mutex
	n := 0
	all := make(chan struct{})
	onPod := func(o any) {
		pod, ok := o.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if i, ok := index[pod.Name]; ok && bound[i].IsZero() {
			bound[i] = time.Now()
			if n++; n == len(pods) {
				close(all)
			}
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(b.client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "bench=measured" }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) }}); err != nil {
		return r, err
	}
	ictx, stopInformer := context.WithCancel(ctx)
	factory.Start(ictx.Done())
	defer func() {
		stopInformer()
		factory.Shutdown()
	}()
	if !toolscache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
		return r, errors.New("pod informer did not sync")
	}
	start := time.Now()
	if workload == "Gang" {
		if err := b.podGroup(ctx, ns, "g", int64(len(pods))); err != nil {
			return r, err
		}
	}
	cctx, stopCreating := context.WithCancel(ctx)
	var creating sync.WaitGroup
	var createErr error
	creating.Go(func() {
		createErr = parallel(cctx, len(pods), 16, func(i int) error {
			_, err := b.client.CoreV1().Pods(ns).Create(cctx, pods[i], metav1.CreateOptions{})
			created[i] = time.Now()
			return err
		})
	})
	// Cleanup must not race creations still in flight.
	defer func() {
		stopCreating()
		creating.Wait()
	}()
	timeout := time.NewTimer(10 * time.Minute)
	defer timeout.Stop()
	select {
	case <-all:
	case <-timeout.C:
		mu.Lock()
		defer mu.Unlock()
		return r, fmt.Errorf("%d of %d pods bound after 10 minutes", n, len(pods))
	case <-ctx.Done():
		return r, ctx.Err()
	}
	end := time.Now()
	creating.Wait()
	if createErr != nil {
		return r, fmt.Errorf("creating pods: %w", createErr)
	}
	mu.Lock()
	defer mu.Unlock()
	r.podsPerSec = float64(len(pods)) / end.Sub(start).Seconds()
	r.cpuPer1000 = (cpuSeconds(p.pids) - cpu0) * 1000 / float64(len(pods))
	var lat []time.Duration
	for i := range pods {
		// created[i] is when the create call returned; the watch can
		// report the binding earlier than that.
		lat = append(lat, max(0, bound[i].Sub(created[i])))
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	for _, pid := range p.pids {
		r.rssMiB = max(r.rssMiB, rssMiB(pid))
	}
	return r, nil
}

func (b *bench) probe(ctx context.Context, ns, schedName string) error {
	p := pod(ns, "probe", schedName, "10m")
	p.Labels = map[string]string{"bench": "probe"}
	if _, err := b.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return err
	}
	return poll(ctx, 2*time.Minute, func() bool {
		got, err := b.client.CoreV1().Pods(ns).Get(ctx, "probe", metav1.GetOptions{})
		return err == nil && got.Spec.NodeName != ""
	})
}

// cleanup deletes the namespace's pods at once (no kubelet runs them) and
// waits until they are gone, then deletes the namespace.
func (b *bench) cleanup(ctx context.Context, ns string) {
	zero := int64(0)
	pods := b.client.CoreV1().Pods(ns)
	if err := poll(ctx, 5*time.Minute, func() bool {
		if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
			b.log.Warn("deleting pods", "ns", ns, "err", err)
		}
		l, err := pods.List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(l.Items) == 0
	}); err != nil {
		b.log.Warn("pods left behind", "ns", ns, "err", err)
	}
	_ = b.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	// keelson's per-node claim ledgers: entries of deleted pods would be
	// looked up one by one by the next run's fresh instances.
	if err := b.client.CoordinationV1().Leases("kube-system").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.log.Warn("deleting ledger leases", "err", err)
	}
}

func (b *bench) podGroup(ctx context.Context, ns, name string, minMember int64) error {
	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gang.Group + "/" + gang.Version, "kind": gang.Kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"minMember": minMember, "scheduleTimeoutSeconds": int64(300)},
	}}
	_, err := b.dyn.Resource(gang.GVR).Namespace(ns).Create(ctx, pg, metav1.CreateOptions{})
	return err
}

// ---- helpers ----

func pod(ns, name, schedName, cpu string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"bench": "measured"}},
		Spec: corev1.PodSpec{
			SchedulerName: schedName,
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:3", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("64Mi")},
			}}},
			TerminationGracePeriodSeconds: new(int64(0)),
			AutomountServiceAccountToken:  new(false),
		},
	}
}

// parallel runs fn(0..n-1) on workers goroutines; the first error wins.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// poll checks cond every 100 ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// cpuSeconds sums utime+stime of the processes (clock ticks of 1/100 s,
// the Linux USER_HZ).
func cpuSeconds(pids []int) float64 {
	var total float64
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (u + st) / 100
	}
	return total
}

func rssMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/keelson-dev/keelson/bench/internal/benchutil"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	"github.com/keelson-dev/keelson/internal/scheduler/validate"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// sizes of a mode.
type sizes struct {
	nodes, basic, anti, affinity, spread, preempt, gang int
	// antiInit and affinityInit pods exist (bound) before the measured
	// pods of SchedulingPodAntiAffinity and SchedulingPodAffinity, as
	// upstream's initPods.
	antiInit, affinityInit int
	// satNodes nodes form the saturation pool, offered mixed-size pods
	// asking for 1.25 times its CPU (and about 1.1 times its memory).
	satNodes int
	// memPods pods are created bound for the memory step.
	memPods int
	// ceiling pods are bound directly in each BindingCeiling run.
	ceiling int
}

var modes = map[string]sizes{
	"quick": {nodes: 500, basic: 1000, anti: 400, antiInit: 100, affinity: 1000, affinityInit: 500, spread: 1000, preempt: 200, gang: 200, satNodes: 20, memPods: 5000, ceiling: 1000},
	"full":  {nodes: 5000, basic: 3000, anti: 1000, antiInit: 1000, affinity: 1000, affinityInit: 5000, spread: 1000, preempt: 500, gang: 1000, satNodes: 100, memPods: 10000, ceiling: 1000},
	// mem50k is the memory figure on its own (--mode mem50k
	// --workloads Memory): creating 50,000 pods takes minutes here.
	"mem50k": {nodes: 5000, memPods: 50000},
}

// profileDir and profileSeconds: see the flags.
var (
	profileDir     string
	profileSeconds int
	memPodsFlag    int
	// altKeelson and repeat: see the flags.
	altKeelson string
	repeat     int
	benchJSON  bool
	// packProfileFile replaces keelsonPackProfile when set.
	packProfileFile string
	// keelsonExtraFile is added to every keelson config when set.
	keelsonExtraFile string
)

const (
	zoneKey  = "topology.kubernetes.io/zone"
	hostKey  = "kubernetes.io/hostname"
	poolKey  = "bench.keelson.dev/pool"
	zones    = 10
	nodeCPU  = 32
	nodeMemG = 256
	// clientQP and clientBu are the client QPS and burst every scheduler
	// gets by default (--qps, --burst change them).
	clientQP = 500
	clientBu = 1000
)

// qpsFlag and burstFlag: see the flags.
var (
	qpsFlag   int
	burstFlag int
	shareFlag float64
)

func main() {
	bin := flag.String("bin", "bin", "directory with keelson, kube-apiserver and kube-scheduler")
	mode := flag.String("mode", "quick", "quick (500 nodes), full (5,000 nodes) or mem50k (5,000 nodes, 50,000 pods; use with --workloads Memory)")
	out := flag.String("out", "docs/benchmarks-scheduler.md", "markdown report to write")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all, Memory last); BindingCeiling (only when named) binds pending pods directly, without a scheduler, to measure the kube-apiserver's binding rate")
	scheds := flag.String("schedulers", "", "comma-separated schedulers to run: keelson, keelson×3 (or keelson3), kube-scheduler (default all)")
	flag.StringVar(&profileDir, "profile-dir", "", "write CPU profiles (pprof) of the keelson instances and the kube-apiserver over --profile-seconds from each run's first scheduling attempt, and keelson's heap profile in the Memory step, here")
	flag.IntVar(&profileSeconds, "profile-seconds", 10, "length of each CPU profile")
	flag.StringVar(&altKeelson, "alt-keelson", "", "another keelson binary, run as scheduler keelson-alt (one instance) after keelson in each workload: old and new code in pairs on the same cluster")
	flag.IntVar(&repeat, "repeat", 1, "run each workload's schedulers this many times in turn (pairs: --alt-keelson with --repeat 3)")
	flag.BoolVar(&benchJSON, "bench-json", false, "the bench's own client (its pod informer, creations) speaks JSON instead of protobuf")
	flag.IntVar(&qpsFlag, "qps", clientQP, "client QPS of every scheduler process (keelson's binding client, kube-scheduler's client); raise it with --burst to take the client rate limiter out of the way and measure the API server's ceiling")
	flag.IntVar(&burstFlag, "burst", clientBu, "client burst of every scheduler process")
	flag.Float64Var(&shareFlag, "share", 0, "multiInstance.shareFraction of each keelson×3 instance (0: off, every binding claims; one instance runs --single-instance either way)")
	flag.StringVar(&keelsonExtraFile, "keelson-config", "", "file with top-level fields added to every keelson scheduler config (e.g. multiInstance settings), to compare settings")
	flag.StringVar(&packProfileFile, "pack-profile", "", "file with the profiles section of keelson's config for Saturation, instead of the built-in packing profile (to compare profiles)")
	flag.IntVar(&memPodsFlag, "mem-pods", 0, "bound pods in the Memory step (default: the mode's; 50000 is the issue's figure, on the same nodes as the workloads)")
	flag.Parse()
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, *bin, *mode, *out, *only, *scheds); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

type bench struct {
	log    *slog.Logger
	env    *testenv.Env
	client kubernetes.Interface
	// rawClient speaks JSON, for non-API paths (profiles).
	rawClient kubernetes.Interface
	dyn       dynamic.Interface
	sz        sizes
	cfg       string // keelson scheduler config file
	// packCfg is keelson's config for the saturation workload
	// (keelsonPackProfile).
	packCfg string
	nodes   []*corev1.Node
}

// result of one (workload, scheduler) run.
type result struct {
	workload, scheduler string
	pods                int
	podsPerSec          float64
	window              time.Duration
	cpuPer1000          float64
	// apiCPUPer1000: CPU-s of the kube-apiserver and the store per 1,000
	// pods over the same window.
	apiCPUPer1000 float64
	// steadyPodsPerSec: bindings between the 10th and 90th percentile
	// binding per second.
	steadyPodsPerSec float64
	// fromAttemptPodsPerSec (keelson): pods bound per second from the
	// first scheduling attempt of any instance to the last binding.
	fromAttemptPodsPerSec float64
	p50, p99              time.Duration
	rssMiB, hwmMiB        float64
	violations            int
	unschedulable         int
	cpuAlloc, memAlloc    float64 // saturation: share of the pool's allocatable requested by bound pods
	// shareAnnotated: bound pods carrying keelson's share-of annotation
	// (placed in an instance's share without a claim).
	shareAnnotated int
	note           string
	// requests are the kube-apiserver's requests during the run.
	requests apiCounts
}

// workload builds its pods; Pods that must exist first (preemption
// victims) it creates itself, already bound.
type workload struct {
	name   string
	fn     func(ctx context.Context, ns, schedName string) ([]*corev1.Pod, error)
	scheds []string
	// saturation: the run ends when every pod is bound or unschedulable.
	saturation bool
}

const (
	kKeelson  = "keelson"
	kKeelson3 = "keelson×3"
	// kKeelsonAlt is --alt-keelson's binary, one instance.
	kKeelsonAlt = "keelson-alt"
	kKube       = "kube-scheduler"
)

func run(ctx context.Context, log *slog.Logger, bin, mode, out, only, scheds string) error {
	sz, ok := modes[mode]
	if !ok {
		return fmt.Errorf("unknown mode %q", mode)
	}
	if memPodsFlag > 0 {
		sz.memPods = memPodsFlag
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	apiArgs := []string{testenv.DisableNodeTaintAdmission, "--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"}
	if profileDir != "" {
		// testenv turns profiling off; the last flag wins.
		apiArgs = append(apiArgs, "--profiling=true")
	}
	env, err := testenv.New(ctx, testenv.Options{
		Store: testenv.StoreKeelson, BinDir: abs, Logger: log,
		APIServerArgs: apiArgs,
	})
	if err != nil {
		return fmt.Errorf("starting environment: %w", err)
	}
	defer env.Close()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	// Protobuf, as kube-scheduler's client (and keelson's by default):
	// the kube-apiserver then encodes each watch event of the run's pods
	// once for the bench's informer and the scheduler's.
	if !benchJSON {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	rawClient, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	b := &bench{log: log, env: env, client: client, rawClient: rawClient, dyn: dyn, sz: sz,
		cfg: filepath.Join(env.Dir, "keelson-scheduler.yaml"), packCfg: filepath.Join(env.Dir, "keelson-scheduler-pack.yaml")}
	base := fmt.Sprintf("apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nclientQPS: %d\nclientBurst: %d\n", qpsFlag, burstFlag)
	if shareFlag > 0 {
		base += fmt.Sprintf("multiInstance:\n  enabled: true\n  partition: true\n  shareFraction: %g\n", shareFlag)
	}
	if keelsonExtraFile != "" {
		raw, err := os.ReadFile(keelsonExtraFile)
		if err != nil {
			return fmt.Errorf("reading --keelson-config: %w", err)
		}
		base += strings.TrimSuffix(string(raw), "\n") + "\n"
	}
	if err := os.WriteFile(b.cfg, []byte(base), 0o600); err != nil {
		return err
	}
	packProfile := keelsonPackProfile
	if packProfileFile != "" {
		raw, err := os.ReadFile(packProfileFile)
		if err != nil {
			return fmt.Errorf("reading --pack-profile: %w", err)
		}
		packProfile = string(raw)
	}
	if err := os.WriteFile(b.packCfg, []byte(base+packProfile), 0o600); err != nil {
		return err
	}
	if err := b.setup(ctx); err != nil {
		return err
	}
	all := []string{kKeelson, kKeelsonAlt, kKeelson3, kKube}
	workloads := []workload{
		{name: "SchedulingBasic", fn: b.basic, scheds: all},
		{name: "SchedulingPodAntiAffinity", fn: b.antiAffinity, scheds: all},
		{name: "SchedulingPodAffinity", fn: b.affinity, scheds: all},
		{name: "TopologySpreading", fn: b.spreading, scheds: all},
		{name: "Preemption", fn: b.preemption, scheds: all},
		{name: "Gang", fn: b.gang, scheds: []string{kKeelson, kKeelsonAlt, kKeelson3}},
		{name: "Saturation", fn: b.saturation, scheds: []string{kKeelson, kKeelsonAlt, kKube}, saturation: true},
	}
	want := func(name string) bool {
		if only == "" {
			return true
		}
		return slices.Contains(strings.Split(only, ","), name)
	}
	wantSched := func(name string) bool {
		if name == kKeelsonAlt {
			return altKeelson != ""
		}
		if scheds == "" {
			return true
		}
		list := strings.Split(strings.ReplaceAll(scheds, "keelson3", kKeelson3), ",")
		return slices.Contains(list, name)
	}
	var results []result
	for _, w := range workloads {
		if !want(w.name) {
			continue
		}
		for _, sched := range slices.Repeat(w.scheds, max(repeat, 1)) {
			if !wantSched(sched) {
				continue
			}
			r, err := b.runOne(ctx, w, sched)
			if err != nil {
				return fmt.Errorf("%s with %s: %w", w.name, sched, err)
			}
			log.Info("result", "workload", r.workload, "scheduler", r.scheduler, "pods", r.pods, "window", r.window.Round(time.Millisecond), "pods/s", fmt.Sprintf("%.1f", r.podsPerSec), "pods/s10-90", fmt.Sprintf("%.1f", r.steadyPodsPerSec), "pods/s-from-attempt", fmt.Sprintf("%.1f", r.fromAttemptPodsPerSec), "apiCPU/1000", fmt.Sprintf("%.2f", r.apiCPUPer1000),
				"cpu-s/1000", fmt.Sprintf("%.2f", r.cpuPer1000), "p50", r.p50, "p99", r.p99, "rssMiB", fmt.Sprintf("%.0f", r.rssMiB),
				"apiRequestsPerPod", fmt.Sprintf("%.2f", r.requests.perPod(r.pods-r.unschedulable)), "apiRequests", r.requests.breakdown(r.pods-r.unschedulable),
				"violations", r.violations, "shareAnnotated", r.shareAnnotated, "unschedulable", r.unschedulable, "cpuAlloc", fmt.Sprintf("%.3f", r.cpuAlloc), "memAlloc", fmt.Sprintf("%.3f", r.memAlloc))
			results = append(results, r)
		}
	}
	var ceiling []ceilingResult
	// The ceiling only when asked for by name: it is no scheduler's run.
	if only != "" && want("BindingCeiling") {
		if ceiling, err = b.bindingCeiling(ctx); err != nil {
			return err
		}
	}
	var mem []memResult
	if want("Memory") {
		for _, sched := range []string{kKeelson, kKube} {
			if !wantSched(sched) {
				continue
			}
			m, err := b.memory(ctx, sched)
			if err != nil {
				return fmt.Errorf("memory with %s: %w", sched, err)
			}
			log.Info("memory", "scheduler", sched, "pods", m.pods, "rssMiB", fmt.Sprintf("%.0f", m.rssMiB), "hwmMiB", fmt.Sprintf("%.0f", m.hwmMiB), "startup", m.startup)
			mem = append(mem, m)
		}
		// The memory step's pods are not deleted: it is the last step and
		// the environment is discarded with them (deleting 50,000 pods
		// took minutes and held the shared benchmark lock).
	}
	for _, r := range results {
		if r.violations > 0 {
			log.Error("placement violations", "workload", r.workload, "scheduler", r.scheduler, "violations", r.violations)
		}
	}
	return writeReport(out, mode, sz, results, mem, ceiling)
}

// keelsonPackProfile is keelson's packing profile for saturation
// (docs/scheduler.md, "Packing at saturation"): noderesourcesfit filters
// only, the fragmentation plugin scores.
const keelsonPackProfile = `profiles:
- schedulerName: keelson
  plugins:
  - {name: schedulinggates}
  - {name: prioritysort}
  - {name: nodeunschedulable}
  - {name: nodename}
  - {name: tainttoleration, weight: 3}
  - {name: nodeaffinity, weight: 2}
  - {name: nodeports}
  - {name: noderesourcesfit, extensionPoints: [Filter]}
  - {name: fragmentation, weight: 1}
  - {name: podtopologyspread, weight: 2}
  - {name: interpodaffinity, weight: 2}
  - {name: defaultpreemption}
  - {name: gang}
  - {name: defaultbinder}
`

// kubePackProfile configures kube-scheduler's NodeResourcesFit with
// MostAllocated (cpu and memory, weight 1 each).
const kubePackProfile = `profiles:
- schedulerName: default-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - {name: cpu, weight: 1}
        - {name: memory, weight: 1}
`

// setup creates the nodes, priority classes and the PodGroup CRD.
func (b *bench) setup(ctx context.Context) error {
	start := time.Now()
	b.nodes = make([]*corev1.Node, b.sz.nodes)
	err := parallel(ctx, b.sz.nodes, 32, func(i int) error {
		name := fmt.Sprintf("node-%05d", i)
		labels := map[string]string{hostKey: name, zoneKey: fmt.Sprintf("zone-%d", i%zones)}
		if i >= b.sz.nodes-b.sz.satNodes {
			labels[poolKey] = "saturation"
		}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: *resource.NewQuantity(nodeCPU, resource.DecimalSI), corev1.ResourceMemory: *resource.NewQuantity(nodeMemG<<30, resource.BinarySI),
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
		got, err = b.client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{})
		b.nodes[i] = got
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
	pids       []int
	metricsURL []string // keelson only
	logs       []string // keelson only
	stop       func()
}

func (b *bench) start(ctx context.Context, sched string, saturation bool) (*procs, error) {
	switch sched {
	case kKube:
		extra := ""
		if saturation {
			extra = kubePackProfile
		}
		ks, err := b.env.StartKubeSchedulerWith(ctx, float32(qpsFlag), burstFlag, extra)
		if err != nil {
			return nil, err
		}
		return &procs{pids: []int{ks.Pid()}, stop: func() { _ = ks.Stop() }}, nil
	default:
		n := 1
		if sched == kKeelson3 {
			n = 3
		}
		cfg := b.cfg
		if saturation {
			cfg = b.packCfg
		}
		// Started together, so that no instance has a head start on the
		// backlog.
		ps := make([]*testenv.KeelsonScheduler, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				args := []string{"--config=" + cfg}
				if profileDir != "" {
					args = append(args, "--profiling")
				}
				if n == 1 {
					// One instance: no claim ledger, as one runs it alone.
					args = append(args, "--single-instance")
				}
				if sched == kKeelsonAlt {
					ps[i], errs[i] = b.env.StartKeelsonSchedulerBinary(ctx, altKeelson, fmt.Sprintf("keelson-alt-%d", i), args...)
					return
				}
				ps[i], errs[i] = b.env.StartKeelsonScheduler(ctx, fmt.Sprintf("keelson-%d", i), args...)
			})
		}
		wg.Wait()
		p := &procs{}
		p.stop = func() {
			for _, ks := range ps {
				if ks != nil {
					_ = ks.Stop()
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			p.stop()
			return nil, err
		}
		for _, ks := range ps {
			p.pids = append(p.pids, ks.Pid())
			p.metricsURL = append(p.metricsURL, ks.MetricsURL)
			p.logs = append(p.logs, ks.LogPath)
		}
		return p, nil
	}
}

func schedulerName(sched string) string {
	if sched == kKube {
		return corev1.DefaultSchedulerName
	}
	return "keelson"
}

// cpuSample is the schedulers' CPU time at an instant.
type cpuSample struct {
	at       time.Time
	cpu, api float64
}

// runOne creates the workload's pods with no scheduler running (a
// backlog, as scheduler_perf measures), then starts the scheduler and
// waits until every pod is bound (saturation: bound or unschedulable).
func (b *bench) runOne(ctx context.Context, w workload, sched string) (result, error) {
	r := result{workload: w.name, scheduler: sched}
	ns := strings.ToLower(fmt.Sprintf("%s-%d", w.name, time.Now().UnixNano()%100000))
	// The measured pods' namespace and the init pods' (see initPods).
	for _, name := range []string{ns, initNamespace(ns)} {
		if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return r, err
		}
		defer func() {
			if err := b.cleanup(ctx, name); err != nil {
				b.log.Warn("cleanup", "ns", name, "err", err)
			}
		}()
		// No controller manager runs: the ServiceAccount admission wants the
		// namespace's default account to exist.
		if _, err := b.client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			return r, err
		}
	}
	schedName := schedulerName(sched)
	pods, err := w.fn(ctx, ns, schedName)
	if err != nil {
		return r, err
	}
	r.pods = len(pods)
	bound := make([]time.Time, len(pods))
	unsched := make([]bool, len(pods))
	index := map[string]int{}
	for i, pod := range pods {
		index[pod.Name] = i
	}
	var mu sync.Mutex
	seen, nBound, nUnsched := 0, 0, 0
	var firstBind time.Time
	done := make(chan struct{})
	checkDone := func() {
		if nBound == len(pods) || (w.saturation && nBound+nUnsched == len(pods)) {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	}
	onPod := func(o any, add bool) {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		i, ok := index[pod.Name]
		if !ok {
			return
		}
		if add {
			seen++
		}
		switch {
		case pod.Spec.NodeName != "" && bound[i].IsZero():
			bound[i] = time.Now()
			if firstBind.IsZero() {
				firstBind = bound[i]
			}
			nBound++
			if unsched[i] {
				unsched[i] = false
				nUnsched--
			}
			checkDone()
		case pod.Spec.NodeName == "" && !unsched[i] && unschedulable(pod):
			unsched[i] = true
			nUnsched++
			checkDone()
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(b.client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "bench=measured" }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { onPod(o, true) }, UpdateFunc: func(_, o any) { onPod(o, false) },
	}); err != nil {
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
	if w.name == "Gang" {
		if err := b.podGroup(ctx, ns, "g", int64(len(pods))); err != nil {
			return r, err
		}
	}
	cstart := time.Now()
	if err := parallel(ctx, len(pods), 16, func(i int) error {
		_, err := b.client.CoreV1().Pods(ns).Create(ctx, pods[i], metav1.CreateOptions{})
		return err
	}); err != nil {
		return r, fmt.Errorf("creating pods: %w", err)
	}
	if err := poll(ctx, 2*time.Minute, func() bool { mu.Lock(); defer mu.Unlock(); return seen == len(pods) }); err != nil {
		return r, fmt.Errorf("waiting for the informer to see the pods: %w", err)
	}
	b.log.Info("backlog created", "workload", w.name, "scheduler", sched, "pods", len(pods), "took", time.Since(cstart).Round(time.Millisecond))

	req0, err := b.apiRequests(ctx)
	if err != nil {
		return r, err
	}
	p, err := b.start(ctx, sched, w.saturation)
	if err != nil {
		return r, err
	}
	defer p.stop()
	// CPU is sampled every 50 ms, so that the CPU spent before scheduling
	// began (informer sync of 5,000 nodes and the backlog) is left out.
	var samples []cpuSample
	var sampleMu sync.Mutex
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	var sampling sync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			s := cpuSample{at: time.Now(), cpu: cpuSeconds(p.pids), api: cpuSeconds(b.peerPids())}
			sampleMu.Lock()
			samples = append(samples, s)
			sampleMu.Unlock()
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	})
	// keelson: the first scheduling attempt, from its metrics (a gang
	// binds nothing until its last member is placed).
	var firstAttempt time.Time
	if profileDir != "" && len(p.metricsURL) > 0 {
		// ctx, not sctx: the run waits for the profiles to be written.
		sampling.Go(func() { b.profile(ctx, sctx, w.name, sched, p.metricsURL) })
	}
	if len(p.metricsURL) > 0 {
		// Timeline, in the log: every second, the bindings the instances
		// report (their /metrics) against those the bench's watch saw.
		sampling.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
				}
				var done []string
				for _, u := range p.metricsURL {
					done = append(done, fmt.Sprintf("%.0f", metricSum(sctx, u, "keelson_scheduler_binding_duration_seconds_count")))
				}
				mu.Lock()
				seenBound := nBound
				mu.Unlock()
				b.log.Info("timeline", "workload", w.name, "scheduler", sched, "instancesBound", strings.Join(done, "+"), "benchSawBound", seenBound,
					"decided", fmt.Sprintf("%.0f", func() float64 {
						var n float64
						for _, u := range p.metricsURL {
							n += metricSum(sctx, u, `keelson_scheduler_schedule_attempts_total{profile="keelson",result="scheduled"}`)
						}
						return n
					}()))
			}
		})
		sampling.Go(func() {
			for sctx.Err() == nil {
				for _, u := range p.metricsURL {
					if attempts(sctx, u) > 0 {
						firstAttempt = time.Now()
						return
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	timeout := time.NewTimer(10 * time.Minute)
	defer timeout.Stop()
	select {
	case <-done:
	case <-timeout.C:
		stopSampling()
		sampling.Wait()
		mu.Lock()
		defer mu.Unlock()
		return r, fmt.Errorf("%d of %d pods bound, %d unschedulable after 10 minutes", nBound, len(pods), nUnsched)
	case <-ctx.Done():
		return r, ctx.Err()
	}
	end := time.Now()
	if w.saturation {
		// Unschedulable is only final once nothing is in flight: wait
		// until the counts stop moving.
		for {
			mu.Lock()
			before := nBound
			mu.Unlock()
			time.Sleep(3 * time.Second)
			mu.Lock()
			after := nBound
			mu.Unlock()
			if after == before {
				break
			}
		}
	}
	cpuEnd, apiEnd := cpuSeconds(p.pids), cpuSeconds(b.peerPids())
	// The scheduler's requests: from its start (informer lists included)
	// until its events have stopped trailing the bindings.
	req1, err := b.settledRequests(ctx)
	if err != nil {
		return r, err
	}
	r.requests = req1.sub(req0)
	if len(p.metricsURL) > 1 {
		var claims, binds, stolen, changes, shared float64
		for _, u := range p.metricsURL {
			shared += metricSum(ctx, u, "keelson_scheduler_share_placements_total")
			claims += metricSum(ctx, u, "keelson_scheduler_claim_conflicts_total")
			binds += metricSum(ctx, u, "keelson_scheduler_bind_conflicts_total")
			stolen += metricSum(ctx, u, "keelson_scheduler_stolen_pods_total")
			changes += metricSum(ctx, u, "keelson_scheduler_membership_changes_total")
		}
		r.note = fmt.Sprintf("claim conflicts %.0f, bind conflicts %.0f, stolen %.0f, membership changes seen %.0f (summed over the 3 instances, joins at startup included), placed in shares without a claim %.0f", claims, binds, stolen, changes, shared)
	}
	if w.name == "Gang" {
		// The decision (first member held to the group released), from
		// the gang plugin's log line.
		for _, f := range p.logs {
			raw, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for l := range strings.SplitSeq(string(raw), "\n") {
				if strings.Contains(l, "pod group placed") {
					b.log.Info("gang decision", "scheduler", sched, "line", l)
				}
			}
		}
	}
	stopSampling()
	sampling.Wait()
	mu.Lock()
	defer mu.Unlock()
	from := firstBind
	if w.name == "Gang" && !firstAttempt.IsZero() {
		from = firstAttempt
	}
	var lastBind time.Time
	var lat []time.Duration
	var times []time.Time
	for i := range pods {
		if bound[i].IsZero() {
			continue
		}
		lastBind = maxTime(lastBind, bound[i])
		lat = append(lat, max(0, bound[i].Sub(from)))
		times = append(times, bound[i])
	}
	// The rate between the 10th and the 90th percentile binding leaves
	// out the start (informer syncs of instances started together, first
	// cycles) and the tail.
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	if n := len(times); n >= 10 {
		lo, hi := n/10, n*9/10
		if d := times[hi].Sub(times[lo]); d > 0 {
			r.steadyPodsPerSec = float64(hi-lo) / d.Seconds()
		}
	}
	if w.saturation {
		end = lastBind
	}
	if !firstAttempt.IsZero() && lastBind.After(firstAttempt) {
		r.fromAttemptPodsPerSec = float64(nBound) / lastBind.Sub(firstAttempt).Seconds()
	}
	r.window = end.Sub(from)
	r.podsPerSec = float64(nBound) / max(r.window.Seconds(), 1e-3)
	cpu0, api0 := 0.0, 0.0
	for _, s := range samples {
		if s.at.After(from) {
			break
		}
		cpu0, api0 = s.cpu, s.api
	}
	r.cpuPer1000 = (cpuEnd - cpu0) * 1000 / float64(max(nBound, 1))
	r.apiCPUPer1000 = (apiEnd - api0) * 1000 / float64(max(nBound, 1))
	slices.Sort(lat)
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	}
	for _, pid := range p.pids {
		rss, hwm := memMiB(pid)
		r.rssMiB, r.hwmMiB = max(r.rssMiB, rss), max(r.hwmMiB, hwm)
	}
	r.unschedulable = nUnsched
	if err := b.validate(ctx, &r, w.saturation); err != nil {
		return r, err
	}
	return r, nil
}

// peerPids are the kube-apiserver's and the store's processes.
func (b *bench) peerPids() []int {
	var out []int
	for _, a := range b.env.APIServers {
		out = append(out, a.Pid())
	}
	for _, st := range b.env.Stores {
		if pid := st.Pid(); pid != 0 {
			out = append(out, pid)
		}
	}
	return out
}

// profile writes CPU profiles of the keelson instances and the
// kube-apiserver, all taken over the same seconds once the first pod is
// scheduled, to profileDir.
func (b *bench) profile(ctx, runCtx context.Context, workload, sched string, urls []string) {
	for runCtx.Err() == nil {
		var n float64
		for _, u := range urls {
			n += attempts(ctx, u)
		}
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	secs := fmt.Sprint(profileSeconds)
	tag := strings.NewReplacer("×", "x").Replace(workload + "-" + sched)
	save := func(name string, data []byte, err error) {
		if err != nil {
			b.log.Warn("profile", "name", name, "err", err)
			return
		}
		if err := os.WriteFile(filepath.Join(profileDir, tag+"-"+name+".pprof"), data, 0o644); err != nil {
			b.log.Warn("profile", "name", name, "err", err)
		}
	}
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/debug/pprof/profile?seconds="+secs, nil)
			if err != nil {
				save(fmt.Sprint("keelson-", i), nil, err)
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				save(fmt.Sprint("keelson-", i), nil, err)
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			save(fmt.Sprint("keelson-", i), data, err)
		})
	}
	wg.Go(func() {
		data, err := b.rawClient.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", secs).DoRaw(ctx)
		save("kube-apiserver", data, err)
	})
	wg.Wait()
}

// metricSum sums the samples of an instance's metric whose line starts
// with prefix.
func metricSum(ctx context.Context, url, prefix string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	var total float64
	for l := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			total += v
		}
	}
	return total
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func unschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// validate checks every binding of the cluster with the placement
// validator, and for saturation computes the pool's allocation.
func (b *bench) validate(ctx context.Context, r *result, saturation bool) error {
	pl, err := b.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods for validation: %w", err)
	}
	nl, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes for validation: %w", err)
	}
	nsl, err := b.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing namespaces for validation: %w", err)
	}
	nodes := make([]*corev1.Node, len(nl.Items))
	for i := range nl.Items {
		nodes[i] = &nl.Items[i]
	}
	var pods []*corev1.Pod
	for i := range pl.Items {
		if pl.Items[i].DeletionTimestamp == nil {
			pods = append(pods, &pl.Items[i])
		}
	}
	nsLabels := map[string]labels.Set{}
	for _, n := range nsl.Items {
		nsLabels[n.Name] = n.Labels
	}
	vs := validate.Check(nodes, pods, nsLabels)
	r.violations = len(vs)
	for _, p := range pods {
		if p.Spec.NodeName != "" && p.Annotations["scheduler.keelson.dev/share-of"] != "" {
			r.shareAnnotated++
		}
	}
	for i, v := range vs {
		if i == 5 {
			break
		}
		b.log.Error("violation", "workload", r.workload, "scheduler", r.scheduler, "pod", v.Pod, "node", v.Node, "kind", v.Kind, "msg", v.Msg)
	}
	if saturation {
		var cpuCap, memCap, cpuUsed, memUsed int64
		pool := map[string]bool{}
		for _, n := range nodes {
			if n.Labels[poolKey] == "saturation" {
				pool[n.Name] = true
				cpuCap += n.Status.Allocatable.Cpu().MilliValue()
				memCap += n.Status.Allocatable.Memory().Value()
			}
		}
		for _, p := range pods {
			if !pool[p.Spec.NodeName] {
				continue
			}
			for _, c := range p.Spec.Containers {
				cpuUsed += c.Resources.Requests.Cpu().MilliValue()
				memUsed += c.Resources.Requests.Memory().Value()
			}
		}
		r.cpuAlloc = float64(cpuUsed) / float64(max(cpuCap, 1))
		r.memAlloc = float64(memUsed) / float64(max(memCap, 1))
	}
	return nil
}

// attempts reads keelson_scheduler_schedule_attempts_total (all results
// and profiles) from a keelson scheduler's /metrics; 0 on error.
func attempts(ctx context.Context, url string) float64 {
	return metricSum(ctx, url, "keelson_scheduler_schedule_attempts_total{")
}

const memNamespace = "memory"

// memResult is a scheduler's memory with the memory step's pods.
type memResult struct {
	scheduler      string
	pods           int
	rssMiB, hwmMiB float64
	startup        time.Duration
}

// memory creates sz.memPods pods already bound (ten per node, as a
// kubelet-less cluster would hold them; once, kept for every scheduler),
// starts the scheduler, waits until it has bound a probe pod, lets it
// settle and reads its resident memory.
func (b *bench) memory(ctx context.Context, sched string) (memResult, error) {
	m := memResult{scheduler: sched, pods: b.sz.memPods}
	if _, err := b.client.CoreV1().Namespaces().Get(ctx, memNamespace, metav1.GetOptions{}); err != nil {
		if _, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: memNamespace}}, metav1.CreateOptions{}); err != nil {
			return m, err
		}
		if _, err := b.client.CoreV1().ServiceAccounts(memNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			return m, err
		}
		start := time.Now()
		if err := parallel(ctx, b.sz.memPods, 32, func(i int) error {
			p := pod(memNamespace, fmt.Sprintf("mem-%06d", i), "keelson", "100m")
			p.Labels = map[string]string{"bench": "memory", "app": fmt.Sprintf("app-%d", i%500)}
			p.Spec.NodeName = fmt.Sprintf("node-%05d", i%b.sz.nodes)
			_, err := b.client.CoreV1().Pods(memNamespace).Create(ctx, p, metav1.CreateOptions{})
			return err
		}); err != nil {
			return m, fmt.Errorf("creating bound pods: %w", err)
		}
		b.log.Info("memory step pods created", "pods", b.sz.memPods, "took", time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	p, err := b.start(ctx, sched, false)
	if err != nil {
		return m, err
	}
	defer p.stop()
	probe := pod(memNamespace, "probe-"+strings.ReplaceAll(sched, "×", "x"), schedulerName(sched), "10m")
	probe.Labels = map[string]string{"bench": "probe"}
	if _, err := b.client.CoreV1().Pods(memNamespace).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		return m, err
	}
	defer func() {
		_ = b.client.CoreV1().Pods(memNamespace).Delete(ctx, probe.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	}()
	if err := poll(ctx, 5*time.Minute, func() bool {
		got, err := b.client.CoreV1().Pods(memNamespace).Get(ctx, probe.Name, metav1.GetOptions{})
		return err == nil && got.Spec.NodeName != ""
	}); err != nil {
		return m, fmt.Errorf("probe pod not bound: %w", err)
	}
	m.startup = time.Since(start)
	// Let the collector run after the initial lists.
	time.Sleep(10 * time.Second)
	m.rssMiB, m.hwmMiB = memMiB(p.pids[0])
	if profileDir != "" && len(p.metricsURL) > 0 {
		f := filepath.Join(profileDir, fmt.Sprintf("memory-%d-%s.heap.pprof", b.sz.memPods, strings.ReplaceAll(sched, "×", "x")))
		if err := fetchProfile(ctx, p.metricsURL[0]+"/debug/pprof/heap", f); err != nil {
			b.log.Warn("heap profile", "err", err)
		}
	}
	return m, nil
}

// cleanup deletes the namespace's pods at once (no kubelet runs them) and
// waits until they are gone, then deletes the namespace.
func (b *bench) cleanup(ctx context.Context, ns string) error {
	zero := int64(0)
	pods := b.client.CoreV1().Pods(ns)
	err := poll(ctx, 10*time.Minute, func() bool {
		if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
			b.log.Warn("deleting pods", "ns", ns, "err", err)
		}
		l, err := pods.List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(l.Items) == 0
	})
	_ = b.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	// keelson's per-node claim ledgers: entries of deleted pods would be
	// looked up one by one by the next run's fresh instances.
	if lerr := b.client.CoordinationV1().Leases("kube-system").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); lerr != nil {
		b.log.Warn("deleting ledger leases", "err", lerr)
	}
	return err
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

// fetchProfile saves the response of a /debug/pprof URL to file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	return os.WriteFile(file, data, 0o644)
}

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

// memMiB returns VmRSS and VmHWM (peak resident) of a process.
func memMiB(pid int) (rss, hwm float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kb := func(v string) float64 {
		f, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		return f / 1024
	}
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = kb(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm = kb(v)
		}
	}
	return rss, hwm
}

// parallel runs fn(0..n-1) on workers goroutines; the first error wins.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	return benchutil.Parallel(ctx, n, workers, fn)
}

// poll checks cond every 100 ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return benchutil.Poll(ctx, timeout, 100*time.Millisecond, cond)
}

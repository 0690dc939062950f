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
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/keelson-dev/keelson/bench/internal/benchutil"
	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/controller"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// config of a run; flags fill it.
type config struct {
	bin, out, dir, profileDir string
	members                   int
	burst, paced              int
	pacedRate                 float64
	restartObjects            int
	restartMembers            int
	failoverObjects           int
	failoverReplicas          int
	placementSecs             float64
	scenarios                 []string
	cpArgs                    []string
}

func main() {
	var c config
	var scenarios, cpArgs string
	flag.StringVar(&c.bin, "bin", "bin", "directory with keelson, kube-apiserver (and the store it runs on)")
	flag.StringVar(&c.out, "out", "docs/benchmarks-federation.md", "markdown report to write")
	flag.StringVar(&c.dir, "dir", "", "directory for certificates, data and logs (default: a new temporary directory, removed at the end)")
	flag.StringVar(&c.profileDir, "cpu-profile-dir", "", "if set, capture 10 s CPU profiles of the control plane during the burst and right after the restart")
	flag.IntVar(&c.members, "members", 10, "member clusters (each a kube-apiserver on its own keelson store)")
	flag.IntVar(&c.burst, "burst", 1000, "Deployments created at once in the burst scenario, each to every member")
	flag.IntVar(&c.paced, "paced", 1000, "Deployments created at --paced-rate in the paced scenario")
	flag.Float64Var(&c.pacedRate, "paced-rate", 100, "objects per second of the paced scenario")
	flag.IntVar(&c.restartObjects, "restart-objects", 10000, "Deployments of the restart and memory scenario")
	flag.IntVar(&c.restartMembers, "restart-members", 5, "members the restart scenario's objects go to")
	flag.IntVar(&c.failoverObjects, "failover-objects", 1000, "Deployments of the failover scenario")
	flag.IntVar(&c.failoverReplicas, "failover-replicas", 10, "replicas of each failover Deployment, Divided")
	flag.Float64Var(&c.placementSecs, "placement-seconds", 3, "duration of each in-process placement measurement")
	flag.StringVar(&scenarios, "scenarios", "placement,ceiling,burst,paced,restart,failover", "scenarios to run, comma-separated")
	flag.StringVar(&cpArgs, "control-plane-args", "", "extra flags for `keelson federation`, space-separated")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), `Usage: go run ./bench/federation --bin bin --out docs/benchmarks-federation.md [flags]

Measures keelson federation against its issue's targets on a host and N
apiserver-only member clusters (see bench/federation/doc.go) and writes a
markdown report. A full run takes about 10-15 minutes on 2 cores.

Flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	c.scenarios = strings.Split(scenarios, ",")
	c.cpArgs = strings.Fields(cpArgs)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, c); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func (c *config) want(s string) bool { return slices.Contains(c.scenarios, s) }

type bench struct {
	cfg     config
	log     *slog.Logger
	bin     string
	dir     string
	host    *testenv.Env
	hkube   kubernetes.Interface
	hdyn    dynamic.Interface
	members []*testenv.Env
	mkube   []kubernetes.Interface
	obs     *observer
	cp      *controlPlane
	res     *results
}

func run(ctx context.Context, log *slog.Logger, cfg config) error {
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	res := &results{cfg: cfg, date: time.Now().UTC(), loadBefore: loadAvg()}
	b := &bench{cfg: cfg, log: log, bin: bin, res: res}
	if cfg.want("placement") {
		if res.placement, err = measurePlacement(cfg.placementSecs); err != nil {
			return fmt.Errorf("placement: %w", err)
		}
		for _, p := range res.placement {
			log.Info("placement", "case", p.name, "decisions/s", fmt.Sprintf("%.0f", p.perSec))
		}
	}
	needEnv := false
	for _, s := range []string{"ceiling", "burst", "paced", "restart", "failover"} {
		needEnv = needEnv || cfg.want(s)
	}
	if needEnv {
		if err := b.setup(ctx); err != nil {
			return err
		}
		defer b.teardown()
		for _, s := range []struct {
			name string
			fn   func(context.Context) error
		}{{"ceiling", b.ceiling}, {"burst", b.burst}, {"paced", b.pacedRun}, {"restart", b.restart}, {"failover", b.failover}} {
			if !cfg.want(s.name) {
				continue
			}
			log.Info("scenario", "name", s.name, "load", loadAvg())
			if err := s.fn(ctx); err != nil {
				res.errors = append(res.errors, fmt.Sprintf("%s: %v", s.name, err))
				log.Error("scenario failed", "name", s.name, "err", err)
				if ctx.Err() != nil {
					break
				}
			}
		}
	}
	res.loadAfter = loadAvg()
	return writeReport(cfg.out, res)
}

// setup starts the host and the members (a few at a time), the control
// plane, and joins every member.
func (b *bench) setup(ctx context.Context) error {
	dir := b.cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "keelson-fedbench-")
		if err != nil {
			return err
		}
		dir = d
	}
	b.dir = dir
	start := time.Now()
	args := []string{"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"}
	envs := make([]*testenv.Env, b.cfg.members+1)
	sem := make(chan struct{}, 3)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range envs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := "host"
			if i > 0 {
				name = memberName(i - 1)
			}
			e, err := testenv.New(ctx, testenv.Options{Store: testenv.StoreKeelson, BinDir: b.bin, Dir: filepath.Join(dir, name),
				Logger: b.log.With("cluster", name), APIServerArgs: args})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("starting %s: %w", name, err))
				return
			}
			envs[i] = e
		})
	}
	wg.Wait()
	b.host = envs[0]
	b.members = envs[1:]
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.res.setup = time.Since(start)
	hcfg := rest.CopyConfig(b.host.Config)
	hcfg.QPS, hcfg.Burst = 5000, 10000
	var err error
	if b.hkube, err = kubernetes.NewForConfig(hcfg); err != nil {
		return err
	}
	if b.hdyn, err = dynamic.NewForConfig(hcfg); err != nil {
		return err
	}
	for _, m := range b.members {
		mc := rest.CopyConfig(m.Config)
		mc.QPS, mc.Burst = 5000, 10000
		k, err := kubernetes.NewForConfig(mc)
		if err != nil {
			return err
		}
		b.mkube = append(b.mkube, k)
	}
	if b.obs, err = newObserver(ctx, b.mkube); err != nil {
		return err
	}
	if b.cp, err = startControlPlane(ctx, b.bin, b.host.Kubeconfig, b.dir, b.cfg.cpArgs); err != nil {
		return err
	}
	for i, m := range b.members {
		kc, err := os.ReadFile(m.Kubeconfig)
		if err != nil {
			return err
		}
		if err := controller.Join(ctx, b.host.Config, controller.JoinOptions{Name: memberName(i), Kubeconfig: kc,
			Region: fmt.Sprintf("region-%d", i%3)}); err != nil {
			return fmt.Errorf("joining %s: %w", memberName(i), err)
		}
	}
	if err := poll(ctx, 2*time.Minute, func() bool { return b.readyClusters(ctx) == b.cfg.members }); err != nil {
		return fmt.Errorf("waiting for members Ready: %w", err)
	}
	b.log.Info("environment ready", "members", b.cfg.members, "took", time.Since(start).Round(time.Second))
	return nil
}

func (b *bench) teardown() {
	if b.cp != nil {
		b.cp.stop()
	}
	var wg sync.WaitGroup
	for _, e := range append([]*testenv.Env{b.host}, b.members...) {
		if e != nil {
			wg.Go(func() { _ = e.Close() })
		}
	}
	wg.Wait()
	if b.cfg.dir == "" && b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

func memberName(i int) string { return fmt.Sprintf("m%02d", i) }

// readyClusters counts Clusters whose Ready condition is True.
func (b *bench) readyClusters(ctx context.Context) int {
	l, err := b.hdyn.Resource(v1alpha1.ClustersGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, u := range l.Items {
		if clusterReady(&u) {
			n++
		}
	}
	return n
}

func clusterReady(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == v1alpha1.ClusterReady {
			return m["status"] == "True"
		}
	}
	return false
}

// ---- host objects ----

func (b *bench) namespace(ctx context.Context, ns string) error {
	_, err := b.hkube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

// policy creates the PropagationPolicy "bench" in ns selecting every
// Deployment there.
func (b *bench) policy(ctx context.Context, ns string, placement map[string]any, failover map[string]any) error {
	spec := map[string]any{
		"resourceSelectors": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}},
		"placement":         placement,
	}
	if failover != nil {
		spec["failover"] = failover
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "PropagationPolicy",
		"metadata": map[string]any{"name": "bench", "namespace": ns}, "spec": spec,
	}}
	_, err := b.hdyn.Resource(v1alpha1.PropagationPoliciesGVR).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
	return err
}

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"bench": ns}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.invalid/app:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
				}}},
			},
		},
	}
}

func objName(i int) string { return fmt.Sprintf("d-%05d", i) }

// create creates n Deployments in ns with workers creators and returns
// when each create call returned.
func (b *bench) create(ctx context.Context, ns string, n, workers int, replicas int32) (map[string]time.Time, error) {
	var mu sync.Mutex
	created := make(map[string]time.Time, n)
	err := parallel(ctx, n, workers, func(i int) error {
		name := objName(i)
		if _, err := b.hkube.AppsV1().Deployments(ns).Create(ctx, deployment(ns, name, replicas), metav1.CreateOptions{}); err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		created[name] = now
		mu.Unlock()
		return nil
	})
	return created, err
}

// deleteAll deletes the Deployments of ns on the host and waits until the
// control plane removed them from the members and its finalizer let them go.
func (b *bench) deleteAll(ctx context.Context, ns string) error {
	if err := b.hkube.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	err := poll(ctx, 5*time.Minute, func() bool {
		l, err := b.hkube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(l.Items) == 0
	})
	b.obs.forget(ns)
	return err
}

// writes returns the control plane's member writes (apply and delete, ok)
// and skipped writes so far.
func (b *bench) writes(ctx context.Context) (applied, skipped float64, err error) {
	m, err := b.cp.scrape(ctx)
	if err != nil {
		return 0, 0, err
	}
	return sumMetric(m, "keelson_federation_member_writes_total", `result="ok"`),
		sumMetric(m, "keelson_federation_member_writes_skipped_total"), nil
}

// hostWrites returns the control plane's writes to host objects so far.
func (b *bench) hostWrites(ctx context.Context) float64 {
	m, err := b.cp.scrape(ctx)
	if err != nil {
		return -1
	}
	return sumMetric(m, "keelson_federation_host_writes_total")
}

func (b *bench) queueDepth(ctx context.Context) float64 {
	m, err := b.cp.scrape(ctx)
	if err != nil {
		return -1
	}
	return sumMetric(m, "keelson_federation_queue_depth")
}

// parallel runs fn(0..n-1) on workers goroutines; the first error wins.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	return benchutil.Parallel(ctx, n, workers, fn)
}

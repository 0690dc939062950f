package testenv

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DisableNodeTaintAdmission is the kube-apiserver flag that keeps new nodes
// free of the not-ready taint. Pass it in Options.APIServerArgs when nodes
// are added with AddKwokNodes and no controller manager runs (with
// Options.KwokNodes > 0 testenv adds it itself).
const DisableNodeTaintAdmission = "--disable-admission-plugins=TaintNodesByCondition"

// StartKwok starts kwok without creating nodes, for an environment started
// with KwokNodes 0; nodes are then added with AddKwokNodes. It is an error
// to call it when kwok already runs.
func (e *Env) StartKwok(ctx context.Context) error {
	if e.opts.KwokNodes > 0 {
		return fmt.Errorf("kwok already runs (KwokNodes = %d)", e.opts.KwokNodes)
	}
	e.mu.Lock()
	for _, p := range e.procs {
		if p.name == "kwok" {
			e.mu.Unlock()
			return fmt.Errorf("kwok already runs")
		}
	}
	e.mu.Unlock()
	p, err := e.startKwok(ctx)
	if p != nil {
		e.addProc(p)
	}
	return err
}

// KwokNode returns a simulated node named name whose capacity and
// allocatable are alloc (cpu, memory, pods; missing ones keep the default
// 32 CPUs, 256Gi, 110 pods), with the given extra labels. kwok keeps the
// status it is created with.
func KwokNode(name string, alloc corev1.ResourceList, labels map[string]string) *corev1.Node {
	n := kwokNode(name)
	res := n.Status.Allocatable.DeepCopy()
	maps.Copy(res, alloc)
	n.Status.Allocatable = res
	n.Status.Capacity = res.DeepCopy()
	maps.Copy(n.Labels, labels)
	return n
}

// AddKwokNodes creates nodes for kwok to manage (each gets the kwok
// annotation and label if missing) and waits until every one is Ready and
// free of the not-ready/unreachable taints. kwok must be running.
func (e *Env) AddKwokNodes(ctx context.Context, nodes ...*corev1.Node) error {
	client, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	for _, n := range nodes {
		n = n.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[KwokNodeAnnotation] = "fake"
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[KwokNodeLabel] = "kwok"
		if _, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %s: %w", n.Name, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, componentReadyTimeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		var notReady []string
		for _, n := range nodes {
			got, err := client.CoreV1().Nodes().Get(rctx, n.Name, metav1.GetOptions{})
			if err != nil || !nodeReady(got, true) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		select {
		case <-rctx.Done():
			return fmt.Errorf("waiting for nodes %v to be ready (is kwok running?): %w", notReady, rctx.Err())
		case <-tick.C:
		}
	}
}

// KeelsonScheduler is a running `keelson scheduler` process.
type KeelsonScheduler struct {
	// Name names the process in logs; its log is LogPath.
	Name    string
	LogPath string
	// MetricsURL is http://127.0.0.1:PORT (/metrics, /healthz).
	MetricsURL string

	proc *process
}

// StartKeelsonScheduler runs `keelson scheduler` (the keelson binary of
// the environment) against the first apiserver with the admin kubeconfig,
// its metrics on a free port, and waits for its /healthz. name identifies
// the process (log file, --instance-id); args are appended (e.g. --config).
// Close stops it with the rest of the environment; Stop stops it earlier.
func (e *Env) StartKeelsonScheduler(ctx context.Context, name string, args ...string) (*KeelsonScheduler, error) {
	bin := e.opts.KeelsonBinary
	if bin == "" {
		var err error
		if bin, err = LookBinary(e.binDir, BinKeelson); err != nil {
			return nil, err
		}
	}
	return e.StartKeelsonSchedulerBinary(ctx, bin, name, args...)
}

// StartKeelsonSchedulerBinary is StartKeelsonScheduler with the keelson
// binary given.
func (e *Env) StartKeelsonSchedulerBinary(ctx context.Context, bin, name string, args ...string) (*KeelsonScheduler, error) {
	ks := &KeelsonScheduler{Name: name, LogPath: filepath.Join(e.LogDir, name+".log")}
	err := startRetrying(e.log, name, func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(ports[0])
		started := time.Now()
		p, err := startProcess(name, bin, append([]string{
			"scheduler",
			"--kubeconfig=" + e.Kubeconfig,
			"--metrics-addr=" + addr,
			"--instance-id=" + name,
		}, args...), ks.LogPath, e.onExit)
		if err != nil {
			return err
		}
		url := "http://" + addr
		rctx, cancel := context.WithTimeout(ctx, componentReadyTimeout)
		defer cancel()
		if err := p.waitFor(rctx, name+" /healthz", 100*time.Millisecond, func(ctx context.Context) error {
			return httpOK(ctx, url+"/healthz")
		}); err != nil {
			p.kill()
			if p.addrInUse() {
				return fmt.Errorf("%s: %w: %w", name, errAddrInUse, err)
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		e.log.Info("keelson scheduler ready", "name", name, "pid", p.cmd.Process.Pid,
			"took", time.Since(started).Round(time.Millisecond), "log", ks.LogPath)
		ks.proc, ks.MetricsURL = p, url
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.addProc(ks.proc)
	return ks, nil
}

// Stop sends SIGTERM and waits for the exit (SIGKILL after a grace
// period). Stopping twice is harmless.
func (s *KeelsonScheduler) Stop() error { return s.proc.stop(stopTimeout) }

// Kill sends SIGKILL and waits for the exit.
func (s *KeelsonScheduler) Kill() { s.proc.kill() }

// httpOK GETs url and wants 200.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

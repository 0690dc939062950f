package testenv

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kwokStages is the Stage configuration kwok runs nodes and pods with; see
// the file for its origin and license.
//
//go:embed kwok-stages.yaml
var kwokStages []byte

// Node labels and annotations of simulated nodes.
const (
	// KwokNodeAnnotation marks a node kwok manages (value "fake").
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	// KwokNodeLabel is set to "kwok" on every simulated node.
	KwokNodeLabel = "type"
	// kwokNodeLeaseSeconds is the lease duration kwok renews node leases
	// with, so that the node lifecycle controller sees them alive.
	kwokNodeLeaseSeconds = 40
)

// KwokNodeName is the name of simulated node i.
func KwokNodeName(i int) string { return "kwok-node-" + strconv.Itoa(i) }

// startKwok starts kwok, creates the simulated nodes and waits until every
// one is Ready (and, with a controller manager, untainted).
func (e *Env) startKwok(ctx context.Context) (*process, error) {
	bin, err := LookBinary(e.binDir, BinKwok)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(e.Dir, "kwok.kubeconfig")
	if err := writeKubeconfig(kubeconfig, "kwok", e.APIServers[0].URL, e.pki.caPEM, e.pki.tokens[userKwok]); err != nil {
		return nil, err
	}
	stages := filepath.Join(e.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
		return nil, fmt.Errorf("writing kwok stages: %w", err)
	}
	logPath := filepath.Join(e.LogDir, "kwok.log")
	var proc *process
	err = startRetrying(e.log, "kwok", func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		started := time.Now()
		p, err := startProcess("kwok", bin, []string{
			"--kubeconfig=" + kubeconfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
			"-c", stages,
			"--server-address=127.0.0.1:" + strconv.Itoa(ports[0]),
			"--node-lease-duration-seconds=" + strconv.Itoa(kwokNodeLeaseSeconds),
			"--cidr=10.244.0.0/16",
		}, logPath, e.onExit)
		if err != nil {
			return err
		}
		url := "http://127.0.0.1:" + strconv.Itoa(ports[0]) + "/healthz"
		rctx, cancel := context.WithTimeout(ctx, componentReadyTimeout)
		defer cancel()
		if err := p.waitFor(rctx, "kwok /healthz", 200*time.Millisecond, func(ctx context.Context) error {
			return healthz(ctx, url)
		}); err != nil {
			p.kill()
			if p.addrInUse() {
				return fmt.Errorf("kwok: %w: %w", errAddrInUse, err)
			}
			return fmt.Errorf("kwok: %w", err)
		}
		e.log.Info("kwok ready", "pid", p.cmd.Process.Pid, "took", time.Since(started).Round(time.Millisecond), "log", logPath)
		proc = p
		return nil
	})
	if err != nil {
		return nil, err
	}

	client, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return proc, fmt.Errorf("creating client: %w", err)
	}
	for i := range e.opts.KwokNodes {
		if _, err := client.CoreV1().Nodes().Create(ctx, kwokNode(KwokNodeName(i)), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return proc, fmt.Errorf("creating node %s: %w", KwokNodeName(i), err)
		}
	}
	started := time.Now()
	rctx, cancel := context.WithTimeout(ctx, componentReadyTimeout)
	defer cancel()
	err = proc.waitFor(rctx, "kwok nodes to be ready", 250*time.Millisecond, func(ctx context.Context) error {
		return nodesReady(ctx, client, e.opts.KwokNodes, e.opts.ControllerManager)
	})
	if err != nil {
		return proc, err
	}
	e.log.Info("kwok nodes ready", "nodes", e.opts.KwokNodes, "took", time.Since(started).Round(time.Millisecond))
	return proc, nil
}

// kwokNode is a simulated node as kwok's documentation describes one. It
// has no taint: every node here is simulated, so any pod may land on it.
func kwokNode(name string) *corev1.Node {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				KwokNodeAnnotation:             "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
			Labels: map[string]string{
				KwokNodeLabel:                   "kwok",
				"kubernetes.io/hostname":        name,
				"kubernetes.io/os":              "linux",
				"kubernetes.io/arch":            "amd64",
				"kubernetes.io/role":            "agent",
				"node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{
			Allocatable: res,
			Capacity:    res,
			NodeInfo: corev1.NodeSystemInfo{
				Architecture:    "amd64",
				OperatingSystem: "linux",
			},
		},
	}
}

// nodesReady checks that the first n simulated nodes are Ready and, if
// untainted is set, carry no not-ready/unreachable taint.
func nodesReady(ctx context.Context, client kubernetes.Interface, n int, untainted bool) error {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: KwokNodeLabel + "=kwok"})
	if err != nil {
		return err
	}
	byName := make(map[string]*corev1.Node, len(list.Items))
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	notReady := 0
	var first string
	for i := range n {
		node := byName[KwokNodeName(i)]
		if node == nil || !nodeReady(node, untainted) {
			if notReady == 0 {
				first = KwokNodeName(i)
			}
			notReady++
		}
	}
	if notReady > 0 {
		return fmt.Errorf("%d of %d nodes not ready yet (first: %s)", notReady, n, first)
	}
	return nil
}

func nodeReady(node *corev1.Node, untainted bool) bool {
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return false
	}
	if untainted {
		for _, t := range node.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
				return false
			}
		}
	}
	return true
}

package scheduler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keelson-dev/keelson/internal/scheduler"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/gang"
	"github.com/keelson-dev/keelson/internal/scheduler/validate"
	"github.com/keelson-dev/keelson/internal/testenv"
)

const (
	zoneLabel     = "topology.kubernetes.io/zone"
	hostnameLabel = "kubernetes.io/hostname"
	// pollInterval is how often conditions are polled (never a sleep used
	// to wait for something).
	pollInterval = 100 * time.Millisecond
)

// suite is the environment shared by the subtests.
type suite struct {
	env    *testenv.Env
	client kubernetes.Interface
	dyn    dynamic.Interface
	rbac   rbacState
}

func TestScheduler(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver, keelson store, kwok and keelson schedulers; skipped with -short")
	}
	env := testenv.Start(t, testenv.Options{
		Store:         testenv.StoreKeelson,
		APIServerArgs: []string{testenv.DisableNodeTaintAdmission},
	})
	ctx := t.Context()
	if err := env.StartKwok(ctx); err != nil {
		t.Fatal(err)
	}
	client, err := env.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{env: env, client: client, dyn: dyn}
	s.installPodGroupCRD(t)
	for _, pc := range []schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "low"}, Value: 100},
		{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000},
	} {
		if _, err := client.SchedulingV1().PriorityClasses().Create(ctx, &pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Constraints", s.testConstraints)
	t.Run("Preemption", s.testPreemption)
	t.Run("Gang", s.testGang)
	t.Run("ThreeInstances", s.testThreeInstances)
	t.Run("Shares", s.testShares)
}

// ---- constraints ----

func (s *suite) testConstraints(t *testing.T) {
	ctx := t.Context()
	ns := s.namespace(t, "constraints")
	s.nodes(t,
		node("c-0", "4", "8Gi", "20", map[string]string{zoneLabel: "a", "disk": "ssd"}),
		node("c-1", "4", "8Gi", "20", map[string]string{zoneLabel: "b", "disk": "hdd"}),
		tainted(node("c-2", "4", "8Gi", "20", map[string]string{zoneLabel: "c"}), "dedicated", "db"),
		node("c-3", "2", "4Gi", "20", map[string]string{zoneLabel: "a"}),
	)
	s.startScheduler(t, "sched-constraints")

	dbToleration := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}
	var pods []*corev1.Pod
	add := func(p *corev1.Pod) { pods = append(pods, p) }
	add(pod(ns, "big", "3", nil))
	add(pod(ns, "ssd", "100m", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }))
	add(pod(ns, "zone-b", "100m", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: zoneLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}},
			}}},
		}}
	}))
	add(pod(ns, "db", "100m", func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{dbToleration}
		p.Spec.NodeSelector = map[string]string{zoneLabel: "c"}
	}))
	for i := range 3 {
		add(pod(ns, fmt.Sprintf("anti-%d", i), "100m", func(p *corev1.Pod) {
			p.Labels["app"] = "anti"
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "anti"}},
					TopologyKey:   hostnameLabel,
				}},
			}}
		}))
	}
	for i := range 3 {
		add(pod(ns, fmt.Sprintf("spread-%d", i), "100m", func(p *corev1.Pod) {
			p.Labels["app"] = "spread"
			p.Spec.Tolerations = []corev1.Toleration{dbToleration}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: zoneLabel, WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
			}}
		}))
	}
	// Four pods want host port 8080; three untainted nodes have it.
	for i := range 4 {
		add(pod(ns, fmt.Sprintf("port-%d", i), "100m", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}}
		}))
	}
	add(pod(ns, "huge", "100", nil))
	s.create(t, pods...)

	unschedulable := map[string]bool{"huge": true}
	// One of the port pods cannot be placed; which one is up to the order.
	var portLeft string
	s.poll(t, 60*time.Second, "every placeable pod bound and the others marked unschedulable", func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pending, marked := 0, 0
		portLeft = ""
		for i := range list.Items {
			p := &list.Items[i]
			if p.Spec.NodeName != "" {
				continue
			}
			pending++
			if strings.HasPrefix(p.Name, "port-") {
				portLeft = p.Name
			}
			if c := condition(p); c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				marked++
			}
		}
		return pending == 2 && marked == 2 && portLeft != "", nil
	})
	unschedulable[portLeft] = true

	got := s.podsByName(t, ns)
	for name, p := range got {
		if unschedulable[name] {
			if p.Spec.NodeName != "" {
				t.Errorf("%s bound to %s, want unschedulable", name, p.Spec.NodeName)
			}
			continue
		}
		if c := condition(p); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("%s: PodScheduled condition %+v, want True", name, c)
		}
	}
	for name, want := range map[string]string{"ssd": "c-0", "zone-b": "c-1", "db": "c-2"} {
		if n := got[name].Spec.NodeName; n != want {
			t.Errorf("%s on %q, want %s", name, n, want)
		}
	}
	if n := got["big"].Spec.NodeName; n == "c-2" || n == "c-3" {
		t.Errorf("big (3 CPUs, no toleration) on %s", n)
	}
	antiNodes := map[string]bool{}
	for i := range 3 {
		antiNodes[got[fmt.Sprintf("anti-%d", i)].Spec.NodeName] = true
	}
	if len(antiNodes) != 3 || antiNodes["c-2"] {
		t.Errorf("anti-affinity pods on %v, want three distinct untainted nodes", antiNodes)
	}
	zones := map[string]int{}
	for i := range 3 {
		n := got[fmt.Sprintf("spread-%d", i)].Spec.NodeName
		zones[s.nodeLabel(t, n, zoneLabel)]++
	}
	if len(zones) != 3 {
		t.Errorf("spread pods per zone %v, want one in each of a, b, c", zones)
	}

	huge := got["huge"]
	// As kube-scheduler: one reason per node, from the first filter that
	// rejects it (taints before resources), most frequent first.
	want := "0/4 nodes are available: 3 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: db}."
	if msg := condition(huge).Message; !strings.HasPrefix(msg, want) {
		t.Errorf("huge: condition message %q, want it to start with %q", msg, want)
	}
	portMsg := condition(got[portLeft]).Message
	for _, want := range []string{"0/4 nodes are available: ", "3 node(s) didn't have free ports for the requested pod ports", "1 node(s) had untolerated taint {dedicated: db}"} {
		if !strings.Contains(portMsg, want) {
			t.Errorf("%s: condition message %q lacks %q", portLeft, portMsg, want)
		}
	}
	s.wantEvent(t, ns, "ssd", "Scheduled", "Successfully assigned "+ns+"/ssd to c-0")
	s.wantEvent(t, ns, "huge", "FailedScheduling", "0/4 nodes are available")
	s.validate(t)
	s.cleanup(t, ns, "c-0", "c-1", "c-2", "c-3")
	_ = ctx
}

// ---- preemption ----

func (s *suite) testPreemption(t *testing.T) {
	ns := s.namespace(t, "preemption")
	s.nodes(t,
		node("p-0", "2", "8Gi", "20", nil),
		node("p-1", "2", "8Gi", "20", nil),
	)
	// Under the shipped RBAC (deploy/scheduler/rbac.yaml): preemption
	// uses the most verbs (delete pods, pods/status, PDBs, leases).
	ks := s.startScheduler(t, "sched-preemption", "--kubeconfig="+s.rbacScheduler(t))
	var low []*corev1.Pod
	for i := range 4 {
		low = append(low, pod(ns, fmt.Sprintf("low-%d", i), "1", func(p *corev1.Pod) { p.Spec.PriorityClassName = "low" }))
	}
	s.create(t, low...)
	s.waitBound(t, ns, 4, 30*time.Second)

	s.create(t, pod(ns, "high", "2", func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" }))
	var host string
	s.poll(t, 60*time.Second, "the high-priority pod bound", func(ctx context.Context) (bool, error) {
		p, err := s.client.CoreV1().Pods(ns).Get(ctx, "high", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		host = p.Spec.NodeName
		return host != "", nil
	})
	got := s.podsByName(t, ns)
	survivors := 0
	for name, p := range got {
		if !strings.HasPrefix(name, "low-") || p.DeletionTimestamp != nil {
			continue
		}
		survivors++
		if p.Spec.NodeName == host {
			t.Errorf("%s still on %s next to the preemptor", name, host)
		}
	}
	if survivors != 2 {
		t.Errorf("%d low-priority pods left, want 2 (the fewest victims)", survivors)
	}
	s.wantEvent(t, ns, "high", "Scheduled", "to "+host)
	s.validate(t)
	wantNoForbidden(t, ks.LogPath)
	s.cleanup(t, ns, "p-0", "p-1")
}

// ---- gangs ----

func (s *suite) testGang(t *testing.T) {
	ctx := t.Context()
	ns := s.namespace(t, "gang")
	s.nodes(t,
		node("g-0", "4", "8Gi", "20", nil),
		node("g-1", "4", "8Gi", "20", nil),
	)
	gs := s.startScheduler(t, "sched-gang", "--kubeconfig="+s.rbacScheduler(t))
	t.Cleanup(func() { wantNoForbidden(t, gs.LogPath) })

	member := func(group string, i int, cpu string) *corev1.Pod {
		return pod(ns, fmt.Sprintf("%s-%d", group, i), cpu, func(p *corev1.Pod) { p.Labels[gang.LabelPodGroup] = group })
	}
	// A group of four 1-CPU members fits: all bind.
	s.podGroup(t, ns, "fits", 4)
	var fits []*corev1.Pod
	for i := range 4 {
		fits = append(fits, member("fits", i, "1"))
	}
	s.create(t, fits...)
	s.waitBound(t, ns, 4, 30*time.Second)

	// 4 CPUs are left, 2 per node. A group of three 2-CPU members cannot
	// fit: none may bind, and while it waits it must hold nothing.
	s.podGroup(t, ns, "toobig", 3)
	var big []*corev1.Pod
	for i := range 3 {
		big = append(big, member("toobig", i, "2"))
	}
	s.create(t, big...)
	s.poll(t, 60*time.Second, "every member of the group that cannot fit marked unschedulable", func(ctx context.Context) (bool, error) {
		marked := 0
		for i := range 3 {
			p, err := s.client.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("toobig-%d", i), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if p.Spec.NodeName != "" {
				return false, fmt.Errorf("member %s of a gang that cannot fit was bound to %s", p.Name, p.Spec.NodeName)
			}
			if c := condition(p); c != nil && c.Status == corev1.ConditionFalse {
				marked++
			}
		}
		return marked == 3, nil
	})
	// Nothing held: two ordinary 2-CPU pods take the room the members
	// would have held.
	s.create(t, pod(ns, "filler-0", "2", nil), pod(ns, "filler-1", "2", nil))
	s.poll(t, 60*time.Second, "ordinary pods bound in the room the gang does not hold", func(ctx context.Context) (bool, error) {
		for _, name := range []string{"filler-0", "filler-1"} {
			p, err := s.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || p.Spec.NodeName == "" {
				return false, err
			}
		}
		return true, nil
	})
	for name, p := range s.podsByName(t, ns) {
		if strings.HasPrefix(name, "toobig-") && p.Spec.NodeName != "" {
			t.Errorf("gang member %s bound to %s", name, p.Spec.NodeName)
		}
	}
	// The ledger has no claim of a member of the group that did not fit.
	for _, n := range []string{"g-0", "g-1"} {
		for _, e := range s.ledger(t, n) {
			if strings.HasPrefix(e.Pod, ns+"/toobig-") {
				t.Errorf("ledger of %s holds a claim for %s", n, e.Pod)
			}
		}
	}
	s.validate(t)
	s.cleanup(t, ns, "g-0", "g-1")
	_ = ctx
}

// ---- several instances ----

// waitAllLive waits until every one of scheds counts all of them as live
// instances (pending pods are shared out only between instances that know
// each other). The deadline only bounds a hung run.
func (s *suite) waitAllLive(t *testing.T, scheds []*testenv.KeelsonScheduler) {
	s.poll(t, 3*time.Minute, fmt.Sprintf("every instance sees %d live instances", len(scheds)), func(ctx context.Context) (bool, error) {
		for _, ks := range scheds {
			if metricValue(t, ks.MetricsURL, "keelson_scheduler_live_instances") != float64(len(scheds)) {
				return false, nil
			}
		}
		return true, nil
	})
}

func (s *suite) testThreeInstances(t *testing.T) {
	const (
		nodes     = 5
		perNode   = 40 // 100m pods: 4 CPUs and 40 pods per node
		overflow  = 10
		instances = 3
	)
	ns := s.namespace(t, "multi")
	var names []string
	var nn []*corev1.Node
	for i := range nodes {
		name := fmt.Sprintf("m-%d", i)
		names = append(names, name)
		nn = append(nn, node(name, "4", "16Gi", fmt.Sprint(perNode), nil))
	}
	s.nodes(t, nn...)
	var scheds []*testenv.KeelsonScheduler
	for i := range instances {
		scheds = append(scheds, s.startScheduler(t, fmt.Sprintf("sched-multi-%d", i)))
	}
	defer func() {
		for _, ks := range scheds {
			t.Logf("%s: %s", ks.Name, metricsSummary(t, ks.MetricsURL))
		}
	}()
	// Pending pods are shared out only between instances that know each
	// other: wait until every one sees all three membership Leases. The
	// deadlines below only bound a hung run; nothing asserts speed.
	s.waitAllLive(t, scheds)
	memberChanges := func() float64 {
		var n float64
		for _, ks := range scheds {
			n += metricValue(t, ks.MetricsURL, "keelson_scheduler_membership_changes_total")
		}
		return n
	}
	changesBefore := memberChanges()
	total := nodes*perNode + overflow
	pods := make([]*corev1.Pod, total)
	for i := range pods {
		pods[i] = pod(ns, fmt.Sprintf("p-%03d", i), "100m", nil)
	}
	start := time.Now()
	s.create(t, pods...)
	s.waitBound(t, ns, nodes*perNode, 10*time.Minute)
	t.Logf("%d pods bound by %d instances in %s", nodes*perNode, instances, time.Since(start).Round(time.Millisecond))
	s.validate(t)
	// The overflow stays pending and marked unschedulable.
	s.poll(t, 5*time.Minute, "the pods without room marked unschedulable", func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound, marked := 0, 0
		for i := range list.Items {
			p := &list.Items[i]
			if p.Spec.NodeName != "" {
				bound++
			} else if c := condition(p); c != nil && c.Status == corev1.ConditionFalse {
				marked++
			}
		}
		if bound > nodes*perNode {
			return false, fmt.Errorf("%d pods bound on room for %d", bound, nodes*perNode)
		}
		return marked == overflow, nil
	})
	// A losing instance must not mark a pod another one bound.
	for name, p := range s.podsByName(t, ns) {
		if c := condition(p); p.Spec.NodeName != "" && (c == nil || c.Status != corev1.ConditionTrue) {
			t.Errorf("%s bound to %s with PodScheduled %+v", name, p.Spec.NodeName, c)
		}
	}
	s.validate(t)
	// Every pod bound once: the instances' successful bindings add up to
	// the pods bound (a binding the API server refused is a conflict, not
	// a success).
	var decisions, conflicts, stolen, bindings float64
	for _, ks := range scheds {
		d := metricValue(t, ks.MetricsURL, `keelson_scheduler_schedule_attempts_total{profile="keelson",result="scheduled"}`)
		c := metricValue(t, ks.MetricsURL, "keelson_scheduler_claim_conflicts_total") +
			metricValue(t, ks.MetricsURL, "keelson_scheduler_bind_conflicts_total")
		st := metricValue(t, ks.MetricsURL, "keelson_scheduler_stolen_pods_total")
		b := metricValue(t, ks.MetricsURL, "keelson_scheduler_binding_duration_seconds_count")
		t.Logf("%s: %.0f decisions, %.0f bindings, %.0f conflicts, %.0f stolen", ks.Name, d, b, c, st)
		decisions, conflicts, stolen, bindings = decisions+d, conflicts+c, stolen+st, bindings+b
	}
	bound := float64(nodes * perNode)
	if bindings != bound {
		t.Errorf("instances report %.0f successful bindings for %.0f pods bound", bindings, bound)
	}
	// Each instance took its share. The bounds are loose on purpose (races
	// on five nearly full nodes depend on the machine's load); what they
	// catch is every instance trying every pod, as before pending pods
	// were shared out (~975 decisions and ~690 lost races for 200 pods).
	// They hold only while membership was stable: an instance that
	// missed renewals on an overloaded machine hands its pods over.
	if changes := memberChanges() - changesBefore; changes > 0 {
		t.Logf("membership changed %.0f times during the run: sharing not checked", changes)
	} else {
		for _, ks := range scheds {
			if metricValue(t, ks.MetricsURL, `keelson_scheduler_schedule_attempts_total{profile="keelson",result="scheduled"}`) == 0 {
				t.Errorf("%s made no scheduling decision: pods were not shared out", ks.Name)
			}
		}
		if decisions > 2*bound || conflicts > bound {
			t.Errorf("%.0f decisions and %.0f conflicts (claims and bindings lost) for %.0f pods: want at most %.0f and %.0f",
				decisions, conflicts, bound, 2*bound, bound)
		}
	}
	s.cleanup(t, ns, names...)
}

// ---- helpers ----

// metricValue sums the samples of a metric on an instance's /metrics
// whose line starts with prefix (a name, or a name with its labels).
// testShares: three instances with multiInstance.shareFraction place
// most pods without ledger claims; one leaves and another joins mid-run.
// No node may be overcommitted, every instance must have used its share,
// and the room reserved for unused shares may cost at most 2 × 0.2 of it.
func (s *suite) testShares(t *testing.T) {
	const (
		nodes   = 5
		perNode = 40 // 100m pods: 4 CPUs and 40 pods per node
		first   = 100
		second  = 110
	)
	ns := s.namespace(t, "shares")
	var nn []*corev1.Node
	for i := range nodes {
		nn = append(nn, node(fmt.Sprintf("sh-%d", i), "4", "16Gi", fmt.Sprint(perNode), nil))
	}
	s.nodes(t, nn...)
	cfg := filepath.Join(t.TempDir(), "shares.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: keelson.dev/v1alpha1\nkind: SchedulerConfiguration\nmultiInstance:\n  shareFraction: 0.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	running := map[string]*testenv.KeelsonScheduler{}
	start := func(name string) {
		running[name] = s.startScheduler(t, name, "--config="+cfg)
	}
	allLive := func() {
		var ks []*testenv.KeelsonScheduler
		for _, k := range running {
			ks = append(ks, k)
		}
		s.waitAllLive(t, ks)
	}
	shared := map[string]float64{}
	for i := range 3 {
		start(fmt.Sprintf("sched-share-%d", i))
	}
	allLive()
	pods := make([]*corev1.Pod, first+second)
	for i := range pods {
		pods[i] = pod(ns, fmt.Sprintf("s-%03d", i), "100m", nil)
	}
	s.create(t, pods[:first]...)
	s.waitBound(t, ns, first, 10*time.Minute)
	s.validate(t)
	// One leaves (its Lease goes after its bindings), another joins.
	leaving := running["sched-share-2"]
	shared[leaving.Name] = metricValue(t, leaving.MetricsURL, "keelson_scheduler_share_placements_total")
	if err := leaving.Stop(); err != nil {
		t.Fatal(err)
	}
	delete(running, leaving.Name)
	start("sched-share-3")
	allLive()
	s.create(t, pods[first:]...)
	// Unused shares of the others may leave up to 2 × 0.2 of the room
	// unclaimable for a given instance's pods.
	s.poll(t, 10*time.Minute, "at least 60% of the room filled", func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound := 0
		for i := range list.Items {
			if list.Items[i].Spec.NodeName != "" {
				bound++
			}
		}
		return bound >= nodes*perNode*6/10, nil
	})
	s.validate(t)
	for name, ks := range running {
		shared[name] = metricValue(t, ks.MetricsURL, "keelson_scheduler_share_placements_total")
	}
	annotated := map[string]int{}
	for _, p := range s.podsByName(t, ns) {
		if p.Spec.NodeName != "" {
			annotated[p.Annotations["scheduler.keelson.dev/share-of"]]++
		}
	}
	t.Logf("share placements per instance: %v; bound pods by share-of annotation (\"\": claimed): %v", shared, annotated)
	for name, n := range shared {
		if n == 0 {
			t.Errorf("%s placed nothing in its share", name)
		}
	}
	holders := 0
	for id := range annotated {
		if id != "" {
			holders++
		}
	}
	if holders != 4 {
		t.Errorf("bound pods carry the share-of annotation of %d instances, want all 4: %v", holders, annotated)
	}
}

func metricValue(t *testing.T, url, prefix string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading metrics: %v", err)
	}
	var sum float64
	for l := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		rest := l[len(prefix):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric whose name starts with prefix
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// metricsSummary returns an instance's attempt and claim-conflict counters.
func metricsSummary(t *testing.T, url string) string {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for l := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(l, "keelson_scheduler_schedule_attempts_total") || strings.HasPrefix(l, "keelson_scheduler_claim_conflicts_total") ||
			strings.HasPrefix(l, "keelson_scheduler_bind_conflicts_total") || strings.HasPrefix(l, "keelson_scheduler_stolen_pods_total") {
			out = append(out, strings.TrimPrefix(l, "keelson_scheduler_"))
		}
	}
	return strings.Join(out, "; ")
}

func node(name, cpu, mem, pods string, lbls map[string]string) *corev1.Node {
	l := map[string]string{hostnameLabel: name}
	for k, v := range lbls {
		l[k] = v
	}
	return testenv.KwokNode(name, corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods:   resource.MustParse(pods),
	}, l)
}

func tainted(n *corev1.Node, key, value string) *corev1.Node {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffectNoSchedule})
	return n
}

func pod(ns, name, cpu string, mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"test": "scheduler"}},
		Spec: corev1.PodSpec{
			SchedulerName: scheduler.DefaultSchedulerName,
			Containers: []corev1.Container{{
				Name:  "c",
				Image: "registry.invalid/pause:3",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse(cpu),
					corev1.ResourceMemory: resource.MustParse("64Mi"),
				}},
			}},
			AutomountServiceAccountToken:  new(false),
			TerminationGracePeriodSeconds: new(int64(0)),
		},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func condition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func (s *suite) poll(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			if strings.Contains(err.Error(), "was bound") || strings.Contains(err.Error(), "bound on room") {
				return false, err
			}
			last = err
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

// namespace creates a namespace with its default service account (no
// controller manager runs to create it).
func (s *suite) namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (s *suite) nodes(t *testing.T, nodes ...*corev1.Node) {
	t.Helper()
	if err := s.env.AddKwokNodes(t.Context(), nodes...); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) nodeLabel(t *testing.T, name, key string) string {
	t.Helper()
	n, err := s.client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Labels[key]
}

// startScheduler starts a keelson scheduler for the rest of the subtest.
func (s *suite) startScheduler(t *testing.T, name string, args ...string) *testenv.KeelsonScheduler {
	t.Helper()
	ks, err := s.env.StartKeelsonScheduler(t.Context(), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ks.Stop(); err != nil {
			t.Errorf("stopping %s: %v", name, err)
		}
	})
	return ks
}

// create creates pods with a few workers.
func (s *suite) create(t *testing.T, pods ...*corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, len(pods))
	work := make(chan *corev1.Pod)
	for range 8 {
		wg.Go(func() {
			for p := range work {
				if _, err := s.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("creating pod %s/%s: %w", p.Namespace, p.Name, err)
				}
			}
		})
	}
	for _, p := range pods {
		work <- p
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (s *suite) waitBound(t *testing.T, ns string, n int, timeout time.Duration) {
	t.Helper()
	bound := 0
	s.poll(t, timeout, fmt.Sprintf("%d pods bound in %s", n, ns), func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound = 0
		for i := range list.Items {
			if list.Items[i].Spec.NodeName != "" {
				bound++
			}
		}
		if bound > n {
			return false, fmt.Errorf("%d pods bound on room for %d", bound, n)
		}
		return bound == n, nil
	})
}

func (s *suite) podsByName(t *testing.T, ns string) map[string]*corev1.Pod {
	t.Helper()
	list, err := s.client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// validate checks every binding in the cluster against every constraint.
func (s *suite) validate(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	nodeList, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podList, err := s.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsList, err := s.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*corev1.Node
	for i := range nodeList.Items {
		nodes = append(nodes, &nodeList.Items[i])
	}
	var pods []*corev1.Pod
	bound := 0
	for i := range podList.Items {
		p := &podList.Items[i]
		if p.DeletionTimestamp != nil {
			continue // a victim on its way out
		}
		pods = append(pods, p)
		if p.Spec.NodeName != "" {
			bound++
		}
	}
	namespaces := map[string]labels.Set{}
	for i := range nsList.Items {
		namespaces[nsList.Items[i].Name] = labels.Set(nsList.Items[i].Labels)
	}
	for _, v := range validate.Check(nodes, pods, namespaces) {
		t.Errorf("placement violation: %s", v)
	}
	t.Logf("validator: %d bound pods on %d nodes checked", bound, len(nodes))
}

func (s *suite) wantEvent(t *testing.T, ns, podName, reason, msgPart string) {
	t.Helper()
	s.poll(t, 30*time.Second, fmt.Sprintf("event %s for %s/%s", reason, ns, podName), func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + podName + ",reason=" + reason,
		})
		if err != nil {
			return false, err
		}
		for _, e := range list.Items {
			comp := e.Source.Component
			if comp == "" {
				comp = e.ReportingController
			}
			if strings.Contains(e.Message, msgPart) && comp == "keelson-scheduler" {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d %s events for %s, none from keelson-scheduler containing %q", len(list.Items), reason, podName, msgPart)
	})
}

// ledger returns the claims on a node's Lease.
func (s *suite) ledger(t *testing.T, node string) []scheduler.ClaimEntry {
	t.Helper()
	l, err := s.client.CoordinationV1().Leases(scheduler.Default().MultiInstance.LedgerNamespace).Get(t.Context(), node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	entries, err := scheduler.DecodeClaims(l)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// cleanup deletes the subtest's pods at once and its nodes, so that the
// next subtest starts on an empty cluster.
func (s *suite) cleanup(t *testing.T, ns string, nodes ...string) {
	t.Helper()
	ctx := t.Context()
	zero := int64(0)
	if err := s.client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := s.client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	s.poll(t, 30*time.Second, "pods of "+ns+" gone", func(ctx context.Context) (bool, error) {
		list, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, err
	})
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installPodGroupCRD applies the gang plugin's CRD and waits until
// PodGroups are served.
func (s *suite) installPodGroupCRD(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	var obj map[string]any
	if err := yaml.Unmarshal(gang.CRD, &obj); err != nil {
		t.Fatalf("parsing the PodGroup CRD: %v", err)
	}
	if _, err := s.dyn.Resource(crdGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("installing the PodGroup CRD: %v", err)
	}
	s.poll(t, 60*time.Second, "PodGroups served", func(ctx context.Context) (bool, error) {
		_, err := s.dyn.Resource(gang.GVR).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, err
	})
}

func (s *suite) podGroup(t *testing.T, ns, name string, minMember int64) {
	t.Helper()
	pg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gang.Group + "/" + gang.Version,
		"kind":       gang.Kind,
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"minMember": minMember, "scheduleTimeoutSeconds": int64(30)},
	}}
	if _, err := s.dyn.Resource(gang.GVR).Namespace(ns).Create(t.Context(), pg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating PodGroup %s/%s: %v", ns, name, err)
	}
}

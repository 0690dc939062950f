package schedcompat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	kcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	kframework "k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/interpodaffinity"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeaffinity"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodename"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeports"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodeunschedulable"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/podtopologyspread"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/tainttoleration"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	kmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"

	_ "github.com/keelson-dev/keelson/internal/plugin/all"
	"github.com/keelson-dev/keelson/internal/scheduler/framework"
)

// Sizes: clusters × pods per cluster (pod, node) pairs are compared.
const (
	clusters       = 800
	podsPerCluster = 6
	seed           = 20260404
)

func TestFeasibilityMatchesKubeScheduler(t *testing.T) {
	// kube-scheduler's parallelizer records goroutine metrics.
	kmetrics.Register()
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, seed>>3))
	compared, feasible, mismatches := 0, 0, 0
	for c := range clusters {
		g := &gen{r: rng}
		nodes, existing, namespaces := g.cluster()
		kube := newKube(t, ctx, nodes, existing, namespaces)
		keel := newKeelson(t, nodes, existing, namespaces)
		for i := range podsPerCluster {
			pod := g.pod(fmt.Sprintf("c%d-p%d", c, i), nodes)
			want, wantWhy := kube.feasible(ctx, pod)
			got, gotWhy := keel.feasible(ctx, pod)
			for _, n := range nodes {
				compared++
				if want[n.Name] {
					feasible++
				}
				if want[n.Name] == got[n.Name] {
					continue
				}
				mismatches++
				if mismatches <= 10 {
					t.Errorf("cluster %d, pod %s, node %s: kube-scheduler feasible=%v (%s), keelson feasible=%v (%s)\npod: %s\nnode: %s",
						c, pod.Name, n.Name, want[n.Name], wantWhy[n.Name], got[n.Name], gotWhy[n.Name], describePod(pod), describeNode(n))
				}
			}
		}
	}
	t.Logf("%d (pod, node) pairs compared, %d feasible, %d mismatches", compared, feasible, mismatches)
	if feasible == 0 || feasible == compared {
		t.Fatalf("degenerate generator: %d of %d pairs feasible", feasible, compared)
	}
}

// ---- kube-scheduler side ----

type kubeSide struct {
	snap    *kcache.Snapshot
	plugins []fwk.Plugin
}

func newKube(t *testing.T, ctx context.Context, nodes []*v1.Node, pods []*v1.Pod, namespaces map[string]labels.Set) *kubeSide {
	t.Helper()
	var objs []runtime.Object
	for ns, l := range namespaces {
		objs = append(objs, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l}})
	}
	inf := informers.NewSharedInformerFactory(fake.NewClientset(objs...), 0)
	snap := kcache.NewSnapshot(pods, nodes)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(snap), frameworkruntime.WithInformerFactory(inf))
	if err != nil {
		t.Fatalf("kube framework: %v", err)
	}
	fts := feature.NewSchedulerFeaturesFromGates(utilfeature.DefaultFeatureGate)
	type factory func() (fwk.Plugin, error)
	var ps []fwk.Plugin
	for _, f := range []factory{
		func() (fwk.Plugin, error) { return nodeunschedulable.New(ctx, nil, fh, fts) },
		func() (fwk.Plugin, error) { return nodename.New(ctx, nil, fh, fts) },
		func() (fwk.Plugin, error) { return tainttoleration.New(ctx, nil, fh, fts) },
		func() (fwk.Plugin, error) { return nodeaffinity.New(ctx, &config.NodeAffinityArgs{}, fh, fts) },
		func() (fwk.Plugin, error) { return nodeports.New(ctx, nil, fh, fts) },
		func() (fwk.Plugin, error) {
			return noderesources.NewFit(ctx, &config.NodeResourcesFitArgs{ScoringStrategy: &config.ScoringStrategy{
				Type: config.LeastAllocated, Resources: []config.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
			}}, fh, fts)
		},
		func() (fwk.Plugin, error) {
			return podtopologyspread.New(ctx, &config.PodTopologySpreadArgs{DefaultingType: config.ListDefaulting}, fh, fts)
		},
		func() (fwk.Plugin, error) {
			return interpodaffinity.New(ctx, &config.InterPodAffinityArgs{HardPodAffinityWeight: 1}, fh, fts)
		},
	} {
		p, err := f()
		if err != nil {
			t.Fatalf("kube plugin: %v", err)
		}
		ps = append(ps, p)
	}
	inf.Start(ctx.Done())
	inf.WaitForCacheSync(ctx.Done())
	return &kubeSide{snap: snap, plugins: ps}
}

// feasible runs PreFilter then Filter the way kube-scheduler's framework
// does: a skipped PreFilter skips that plugin's Filter, a rejecting one
// rejects every node, PreFilterResults intersect.
func (k *kubeSide) feasible(ctx context.Context, pod *v1.Pod) (map[string]bool, map[string]string) {
	all, err := k.snap.NodeInfos().List()
	if err != nil {
		panic(err)
	}
	state := kframework.NewCycleState()
	out, why := map[string]bool{}, map[string]string{}
	skip := map[string]bool{}
	var allowed map[string]bool
	for _, p := range k.plugins {
		pf, ok := p.(fwk.PreFilterPlugin)
		if !ok {
			continue
		}
		res, st := pf.PreFilter(ctx, state, pod, all)
		switch {
		case st.IsSkip():
			skip[p.Name()] = true
			continue
		case !st.IsSuccess():
			for _, n := range all {
				why[n.Node().Name] = p.Name() + " prefilter: " + st.Message()
			}
			return out, why
		}
		if !res.AllNodes() {
			next := map[string]bool{}
			for n := range res.NodeNames {
				if allowed == nil || allowed[n] {
					next[n] = true
				}
			}
			allowed = next
		}
	}
	for _, n := range all {
		name := n.Node().Name
		if allowed != nil && !allowed[name] {
			why[name] = "prefilter result"
			continue
		}
		out[name] = true
		for _, p := range k.plugins {
			fp, ok := p.(fwk.FilterPlugin)
			if !ok || skip[p.Name()] {
				continue
			}
			if st := fp.Filter(ctx, state, pod, n); !st.IsSuccess() {
				out[name] = false
				why[name] = p.Name() + ": " + strings.Join(st.Reasons(), "; ")
				break
			}
		}
	}
	return out, why
}

// ---- keelson side ----

type keelsonSide struct {
	fw   *framework.Framework
	snap *framework.Snapshot
}

func newKeelson(t *testing.T, nodes []*v1.Node, pods []*v1.Pod, namespaces map[string]labels.Set) *keelsonSide {
	t.Helper()
	profile := framework.ProfileConfig{SchedulerName: "keelson", Plugins: []framework.PluginConfig{
		{Name: "prioritysort"}, {Name: "nodeunschedulable"}, {Name: "nodename"}, {Name: "tainttoleration"},
		{Name: "nodeaffinity"}, {Name: "nodeports"}, {Name: "noderesourcesfit"}, {Name: "podtopologyspread"},
		{Name: "interpodaffinity"}, {Name: "defaultbinder"},
	}}
	fw, err := framework.New(profile, framework.Options{Parallelism: 1})
	if err != nil {
		t.Fatalf("keelson framework: %v", err)
	}
	infos := map[string]*framework.NodeInfo{}
	var list []*framework.NodeInfo
	for _, n := range nodes {
		ni := framework.NewNodeInfo()
		ni.SetNode(n)
		infos[n.Name] = ni
		list = append(list, ni)
	}
	for _, p := range pods {
		infos[p.Spec.NodeName].AddPodInfo(framework.NewPodInfo(p))
	}
	snap := framework.NewSnapshot(list, namespaces)
	fw.SetSnapshot(snap)
	return &keelsonSide{fw: fw, snap: snap}
}

// feasible mirrors the scheduler's schedulePod up to the feasible list.
func (k *keelsonSide) feasible(ctx context.Context, pod *v1.Pod) (map[string]bool, map[string]string) {
	out, why := map[string]bool{}, map[string]string{}
	state := framework.NewCycleState()
	pi := framework.NewPodInfo(pod)
	pf, st := k.fw.RunPreFilterPlugins(ctx, state, pi)
	if !st.IsSuccess() {
		for _, n := range k.snap.NodeInfos {
			why[n.Name()] = st.Plugin() + " prefilter: " + st.Message()
		}
		return out, why
	}
	for _, n := range k.snap.NodeInfos {
		if pf != nil && pf.NodeNames != nil {
			if _, ok := pf.NodeNames[n.Name()]; !ok {
				why[n.Name()] = "prefilter result"
				continue
			}
		}
		if st := k.fw.RunFilterPlugins(ctx, state, pi, n); !st.IsSuccess() {
			why[n.Name()] = st.Plugin() + ": " + st.Message()
			continue
		}
		out[n.Name()] = true
	}
	return out, why
}

// ---- generator ----

const (
	zoneKey = v1.LabelTopologyZone
	hostKey = v1.LabelHostname
	gpu     = v1.ResourceName("example.com/gpu")
)

type gen struct{ r *rand.Rand }

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *gen) chance(p float64) bool    { return g.r.Float64() < p }

func (g *gen) cluster() ([]*v1.Node, []*v1.Pod, map[string]labels.Set) {
	namespaces := map[string]labels.Set{
		"ns1": {"team": "a"}, "ns2": {"team": "b"}, "ns3": {"team": "a", "env": "prod"},
	}
	var nodes []*v1.Node
	for i := range 3 + g.r.IntN(7) {
		name := fmt.Sprintf("n%d", i)
		l := map[string]string{hostKey: name}
		if g.chance(0.85) {
			l[zoneKey] = g.pick("z1", "z2", "z3")
		}
		if g.chance(0.5) {
			l["disk"] = g.pick("ssd", "hdd")
		}
		if g.chance(0.3) {
			l["cores"] = fmt.Sprint(2 + g.r.IntN(30))
		}
		n := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, UID: types.UID("node-" + name)},
			Status: v1.NodeStatus{Allocatable: v1.ResourceList{
				v1.ResourceCPU:    *resource.NewMilliQuantity(int64(1000*(2+g.r.IntN(15))), resource.DecimalSI),
				v1.ResourceMemory: *resource.NewQuantity(int64(1+g.r.IntN(16))<<30, resource.BinarySI),
				v1.ResourcePods:   *resource.NewQuantity(int64(3+g.r.IntN(12)), resource.DecimalSI),
			}},
		}
		if g.chance(0.3) {
			n.Status.Allocatable[gpu] = *resource.NewQuantity(int64(g.r.IntN(4)), resource.DecimalSI)
		}
		n.Status.Capacity = n.Status.Allocatable.DeepCopy()
		if g.chance(0.1) {
			n.Spec.Unschedulable = true
		}
		if g.chance(0.4) {
			for range 1 + g.r.IntN(2) {
				n.Spec.Taints = append(n.Spec.Taints, g.taint())
			}
		}
		n.Spec.Taints = dedupTaints(n.Spec.Taints)
		nodes = append(nodes, n)
	}
	var pods []*v1.Pod
	for i := range g.r.IntN(3 * len(nodes)) {
		p := g.basePod(fmt.Sprintf("e%d", i))
		if g.chance(0.3) {
			p.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{g.podTerm()},
			}}
		}
		if g.chance(0.1) {
			p.Spec.Affinity = &v1.Affinity{PodAffinity: &v1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{g.podTerm()},
			}}
		}
		if g.chance(0.05) {
			now := metav1.Now()
			p.DeletionTimestamp = &now
		}
		p.Spec.NodeName = nodes[g.r.IntN(len(nodes))].Name
		pods = append(pods, p)
	}
	return nodes, pods, namespaces
}

func dedupTaints(ts []v1.Taint) []v1.Taint {
	var out []v1.Taint
	for _, t := range ts {
		if !slices.ContainsFunc(out, func(o v1.Taint) bool { return o.Key == t.Key && o.Effect == t.Effect }) {
			out = append(out, t)
		}
	}
	return out
}

func (g *gen) taint() v1.Taint {
	return v1.Taint{
		Key:    g.pick("dedicated", "gpu", "spot"),
		Value:  g.pick("", "a", "b"),
		Effect: v1.TaintEffect(g.pick(string(v1.TaintEffectNoSchedule), string(v1.TaintEffectNoExecute), string(v1.TaintEffectPreferNoSchedule))),
	}
}

func (g *gen) quantity(milli int64) resource.Quantity {
	return *resource.NewMilliQuantity(milli, resource.DecimalSI)
}

func (g *gen) container(name string) v1.Container {
	c := v1.Container{Name: name, Image: "pause"}
	if g.chance(0.9) {
		c.Resources.Requests = v1.ResourceList{
			v1.ResourceCPU:    g.quantity(int64(100 * (1 + g.r.IntN(30)))),
			v1.ResourceMemory: *resource.NewQuantity(int64(1+g.r.IntN(40))*(128<<20), resource.BinarySI),
		}
		if g.chance(0.1) {
			c.Resources.Requests[gpu] = *resource.NewQuantity(int64(1+g.r.IntN(2)), resource.DecimalSI)
			c.Resources.Limits = v1.ResourceList{gpu: c.Resources.Requests[gpu]}
		}
	}
	if g.chance(0.15) {
		c.Ports = []v1.ContainerPort{{
			ContainerPort: 80, HostPort: int32(8080 + g.r.IntN(3)),
			Protocol: v1.Protocol(g.pick("TCP", "TCP", "UDP")), HostIP: g.pick("", "", "10.0.0.1", "0.0.0.0"),
		}}
	}
	return c
}

func (g *gen) basePod(name string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: g.pick("ns1", "ns1", "ns2", "ns3"), UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": g.pick("a", "b", "c")},
		},
	}
	if g.chance(0.5) {
		p.Labels["tier"] = g.pick("web", "db")
	}
	for i := range 1 + g.r.IntN(2) {
		p.Spec.Containers = append(p.Spec.Containers, g.container(fmt.Sprint("c", i)))
	}
	if g.chance(0.2) {
		ic := g.container("init")
		ic.Ports = nil
		if g.chance(0.5) {
			always := v1.ContainerRestartPolicyAlways
			ic.RestartPolicy = &always // sidecar
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, ic)
	}
	if g.chance(0.05) {
		p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: g.quantity(250)}
	}
	return p
}

func (g *gen) selector() *metav1.LabelSelector {
	switch g.r.IntN(4) {
	case 0:
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": g.pick("a", "b", "c")}}
	case 1:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{g.pick("a", "b"), g.pick("b", "c")},
		}}}
	case 2:
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": g.pick("a", "b"), "tier": g.pick("web", "db")}}
	default:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "tier", Operator: metav1.LabelSelectorOperator(g.pick("Exists", "DoesNotExist")),
		}}}
	}
}

func (g *gen) podTerm() v1.PodAffinityTerm {
	t := v1.PodAffinityTerm{LabelSelector: g.selector(), TopologyKey: g.pick(hostKey, zoneKey, zoneKey)}
	switch g.r.IntN(5) {
	case 0:
		t.Namespaces = []string{g.pick("ns1", "ns2", "ns3")}
	case 1:
		t.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	case 2:
		t.NamespaceSelector = &metav1.LabelSelector{}
	}
	return t
}

func (g *gen) nodeRequirement() v1.NodeSelectorRequirement {
	switch g.r.IntN(5) {
	case 0:
		return v1.NodeSelectorRequirement{Key: zoneKey, Operator: v1.NodeSelectorOpIn, Values: []string{g.pick("z1", "z2"), g.pick("z2", "z3")}}
	case 1:
		return v1.NodeSelectorRequirement{Key: "disk", Operator: v1.NodeSelectorOpNotIn, Values: []string{g.pick("ssd", "hdd")}}
	case 2:
		return v1.NodeSelectorRequirement{Key: g.pick("disk", zoneKey), Operator: v1.NodeSelectorOperator(g.pick("Exists", "DoesNotExist"))}
	case 3:
		return v1.NodeSelectorRequirement{Key: "cores", Operator: v1.NodeSelectorOperator(g.pick("Gt", "Lt")), Values: []string{fmt.Sprint(g.r.IntN(32))}}
	default:
		return v1.NodeSelectorRequirement{Key: hostKey, Operator: v1.NodeSelectorOpIn, Values: []string{fmt.Sprintf("n%d", g.r.IntN(6))}}
	}
}

func (g *gen) pod(name string, nodes []*v1.Node) *v1.Pod {
	p := g.basePod(name)
	if g.chance(0.2) {
		p.Spec.NodeSelector = map[string]string{}
		if g.chance(0.5) {
			p.Spec.NodeSelector["disk"] = g.pick("ssd", "hdd")
		} else {
			p.Spec.NodeSelector[zoneKey] = g.pick("z1", "z2", "z3")
		}
	}
	aff := &v1.Affinity{}
	if g.chance(0.3) {
		var terms []v1.NodeSelectorTerm
		for range 1 + g.r.IntN(2) {
			var term v1.NodeSelectorTerm
			for range 1 + g.r.IntN(2) {
				term.MatchExpressions = append(term.MatchExpressions, g.nodeRequirement())
			}
			if g.chance(0.1) {
				term.MatchFields = []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{nodes[g.r.IntN(len(nodes))].Name}}}
			}
			terms = append(terms, term)
		}
		aff.NodeAffinity = &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: terms}}
	}
	if g.chance(0.25) {
		aff.PodAffinity = &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{g.podTerm()}}
	}
	if g.chance(0.3) {
		var terms []v1.PodAffinityTerm
		for range 1 + g.r.IntN(2) {
			terms = append(terms, g.podTerm())
		}
		aff.PodAntiAffinity = &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: terms}
	}
	if aff.NodeAffinity != nil || aff.PodAffinity != nil || aff.PodAntiAffinity != nil {
		p.Spec.Affinity = aff
	}
	for range g.r.IntN(3) {
		tol := v1.Toleration{Key: g.pick("dedicated", "gpu", "spot")}
		if g.chance(0.4) {
			tol.Operator = v1.TolerationOpExists
		} else {
			tol.Operator, tol.Value = v1.TolerationOpEqual, g.pick("", "a", "b")
		}
		if g.chance(0.6) {
			tol.Effect = v1.TaintEffect(g.pick(string(v1.TaintEffectNoSchedule), string(v1.TaintEffectNoExecute)))
		}
		p.Spec.Tolerations = append(p.Spec.Tolerations, tol)
	}
	if g.chance(0.05) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: v1.TaintNodeUnschedulable, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule})
	}
	if g.chance(0.05) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Operator: v1.TolerationOpExists})
	}
	if g.chance(0.35) {
		for range 1 + g.r.IntN(2) {
			c := v1.TopologySpreadConstraint{
				MaxSkew: int32(1 + g.r.IntN(2)), TopologyKey: g.pick(zoneKey, hostKey),
				WhenUnsatisfiable: v1.DoNotSchedule, LabelSelector: g.selector(),
			}
			if g.chance(0.2) {
				c.MinDomains = new(int32(2 + g.r.IntN(3)))
			}
			if g.chance(0.2) {
				c.NodeAffinityPolicy = new(v1.NodeInclusionPolicy(g.pick("Honor", "Ignore")))
			}
			if g.chance(0.2) {
				c.NodeTaintsPolicy = new(v1.NodeInclusionPolicy(g.pick("Honor", "Ignore")))
			}
			if g.chance(0.15) {
				c.MatchLabelKeys = []string{"tier"}
			}
			if !slices.ContainsFunc(p.Spec.TopologySpreadConstraints, func(o v1.TopologySpreadConstraint) bool { return o.TopologyKey == c.TopologyKey }) {
				p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
			}
		}
	}
	if g.chance(0.05) {
		p.Spec.NodeName = nodes[g.r.IntN(len(nodes))].Name
	}
	return p
}

func describePod(p *v1.Pod) string {
	return fmt.Sprintf("ns=%s labels=%v nodeName=%q nodeSelector=%v affinity=%+v tolerations=%+v spread=%+v containers=%+v init=%+v",
		p.Namespace, p.Labels, p.Spec.NodeName, p.Spec.NodeSelector, p.Spec.Affinity, p.Spec.Tolerations, p.Spec.TopologySpreadConstraints, p.Spec.Containers, p.Spec.InitContainers)
}

func describeNode(n *v1.Node) string {
	return fmt.Sprintf("labels=%v unschedulable=%v taints=%+v allocatable=%v", n.Labels, n.Spec.Unschedulable, n.Spec.Taints, n.Status.Allocatable)
}

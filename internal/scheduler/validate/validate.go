package validate

import (
	"fmt"
	"math"
	"sort"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/keelson-dev/keelson/internal/scheduler/framework"
	"github.com/keelson-dev/keelson/internal/scheduler/plugins/noderesources"
)

// Violation is one broken constraint.
type Violation struct {
	Pod  string // namespace/name, "" for node-wide violations
	Node string
	Kind string // resources, ports, nodename, nodeaffinity, taints, podaffinity, podantiaffinity, topologyspread
	Msg  string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s on %s: %s: %s", v.Pod, v.Node, v.Kind, v.Msg)
}

type placed struct {
	pi   *framework.PodInfo
	node *v1.Node
}

// Check returns every violation in the placement. pods without
// spec.nodeName are ignored; namespaces maps namespace names to labels
// (for namespaceSelector).
func Check(nodes []*v1.Node, pods []*v1.Pod, namespaces map[string]labels.Set) []Violation {
	var out []Violation
	byName := map[string]*v1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	perNode := map[string][]*framework.PodInfo{}
	var all []placed
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		node, ok := byName[p.Spec.NodeName]
		if !ok {
			out = append(out, Violation{Pod: key(p), Node: p.Spec.NodeName, Kind: "nodename", Msg: "bound to a node that does not exist"})
			continue
		}
		pi := framework.NewPodInfo(p)
		perNode[node.Name] = append(perNode[node.Name], pi)
		all = append(all, placed{pi: pi, node: node})
	}
	for _, n := range nodes {
		out = append(out, checkNode(n, perNode[n.Name])...)
	}
	for _, pl := range all {
		out = append(out, checkPod(pl, all, nodes, namespaces)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func key(p *v1.Pod) string { return p.Namespace + "/" + p.Name }

func checkNode(n *v1.Node, pods []*framework.PodInfo) []Violation {
	var out []Violation
	alloc := framework.NewResource(n.Status.Allocatable)
	var used framework.Resource
	var ports []framework.HostPort
	for i, pi := range pods {
		// Adding pods one by one reports the pod that broke the limit.
		for _, bad := range noderesources.Fits(pi, &alloc, &used, i, nil) {
			out = append(out, Violation{Pod: key(pi.Pod), Node: n.Name, Kind: "resources",
				Msg: fmt.Sprintf("%s: requested %d, in use %d, allocatable %d", bad.Reason(), bad.Requested, bad.Used, bad.Capacity)})
		}
		used.AddResource(&pi.Requests)
		for _, hp := range pi.HostPorts {
			for _, u := range ports {
				if hp.Conflicts(u) {
					out = append(out, Violation{Pod: key(pi.Pod), Node: n.Name, Kind: "ports", Msg: fmt.Sprintf("host port %s conflicts with %s", hp, u)})
				}
			}
		}
		ports = append(ports, pi.HostPorts...)
	}
	return out
}

func tolerates(tols []v1.Toleration, t *v1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(logr.Discard(), t, false) {
			return true
		}
	}
	return false
}

func checkPod(pl placed, all []placed, nodes []*v1.Node, namespaces map[string]labels.Set) []Violation {
	var out []Violation
	pod, node := pl.pi.Pod, pl.node
	add := func(kind, format string, args ...any) {
		out = append(out, Violation{Pod: key(pod), Node: node.Name, Kind: kind, Msg: fmt.Sprintf(format, args...)})
	}
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	if ok, err := required.Match(node); err != nil || !ok {
		add("nodeaffinity", "node does not match nodeSelector/required node affinity")
	}
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if (t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute) && !tolerates(pod.Spec.Tolerations, t) {
			add("taints", "untolerated taint %s=%s:%s", t.Key, t.Value, t.Effect)
		}
	}
	nsOf := func(p *v1.Pod) labels.Set { return namespaces[p.Namespace] }
	sameDomain := func(key string, other *v1.Node) bool {
		v, ok := node.Labels[key]
		ov, ook := other.Labels[key]
		return ok && ook && v == ov
	}
	// Required affinity: some other pod matching all terms shares each
	// term's domain, unless the pod starts its own group.
	if terms := pl.pi.RequiredAffinityTerms; len(terms) > 0 {
		found := false
		for _, o := range all {
			if o.pi.Pod.UID == pod.UID {
				continue
			}
			ok := true
			for i := range terms {
				if !terms[i].Matches(o.pi.Pod, nsOf(o.pi.Pod)) || !sameDomain(terms[i].TopologyKey, o.node) {
					ok = false
					break
				}
			}
			if ok {
				found = true
				break
			}
		}
		self := true
		for i := range terms {
			self = self && terms[i].Matches(pod, nsOf(pod))
			if _, ok := node.Labels[terms[i].TopologyKey]; !ok {
				self = false
			}
		}
		if !found && !self {
			add("podaffinity", "no pod matching its required affinity in the same topology domain")
		}
	}
	// Required anti-affinity, checked for every pod, covers both
	// directions (the incoming pod's and existing pods' terms).
	for i := range pl.pi.RequiredAntiAffinityTerms {
		t := &pl.pi.RequiredAntiAffinityTerms[i]
		for _, o := range all {
			if o.pi.Pod.UID != pod.UID && t.Matches(o.pi.Pod, nsOf(o.pi.Pod)) && sameDomain(t.TopologyKey, o.node) {
				add("podantiaffinity", "shares %s=%s with %s, which its anti-affinity excludes", t.TopologyKey, node.Labels[t.TopologyKey], key(o.pi.Pod))
			}
		}
	}
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != v1.DoNotSchedule {
			continue
		}
		if msg := checkSpread(pod, node, c, all, nodes); msg != "" {
			add("topologyspread", "%s", msg)
		}
	}
	return out
}

func checkSpread(pod *v1.Pod, node *v1.Node, c v1.TopologySpreadConstraint, all []placed, nodes []*v1.Node) string {
	sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
	if err != nil {
		return fmt.Sprintf("bad selector: %v", err)
	}
	for _, k := range c.MatchLabelKeys {
		if v, ok := pod.Labels[k]; ok {
			sel = sel.Add(mustRequirement(k, v)...)
		}
	}
	honorAffinity := c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor
	honorTaints := c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor
	required := nodeaffinity.GetRequiredNodeAffinity(pod)
	counts := map[string]int64{}
	eligible := map[string]bool{}
	for _, n := range nodes {
		v, ok := n.Labels[c.TopologyKey]
		if !ok {
			continue
		}
		if honorAffinity {
			if m, _ := required.Match(n); !m {
				continue
			}
		}
		if honorTaints {
			bad := false
			for i := range n.Spec.Taints {
				t := &n.Spec.Taints[i]
				if (t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute) && !tolerates(pod.Spec.Tolerations, t) {
					bad = true
				}
			}
			if bad {
				continue
			}
		}
		eligible[n.Name] = true
		counts[v] += 0
	}
	for _, o := range all {
		if eligible[o.node.Name] && o.pi.Pod.Namespace == pod.Namespace && o.pi.Pod.DeletionTimestamp == nil && sel.Matches(labels.Set(o.pi.Pod.Labels)) {
			counts[o.node.Labels[c.TopologyKey]]++
		}
	}
	v, ok := node.Labels[c.TopologyKey]
	if !ok {
		return fmt.Sprintf("node lacks topology key %s", c.TopologyKey)
	}
	lo := int64(math.MaxInt64)
	for _, n := range counts {
		lo = min(lo, n)
	}
	if lo == math.MaxInt64 {
		lo = 0
	}
	if skew := counts[v] - lo; skew > int64(c.MaxSkew) {
		return fmt.Sprintf("%s=%s holds %d matching pods, the least loaded domain %d: skew %d > maxSkew %d", c.TopologyKey, v, counts[v], lo, skew, c.MaxSkew)
	}
	return ""
}

func mustRequirement(k, v string) []labels.Requirement {
	r, err := labels.NewRequirement(k, "=", []string{v})
	if err != nil {
		return nil
	}
	return []labels.Requirement{*r}
}

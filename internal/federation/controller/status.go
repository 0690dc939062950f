package controller

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// MemberObject is one member's copy of a host object, as the member
// informer last saw it (Obj nil if not there yet).
type MemberObject struct {
	Cluster string
	Obj     *unstructured.Unstructured
	// Hash is the hash of the manifest this cluster should have now.
	Hash string
}

// replicaKinds have a replica-counting status aggregated field by field.
var replicaKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "ReplicaSet": true}

// AggregateStatus computes the host object's status from its members. It
// returns nil for kinds whose status is not aggregated yet.
//
// For Deployments, StatefulSets and ReplicaSets the counters are summed;
// observedGeneration becomes the host's generation only when every
// selected member holds the current rendering (hash) and has observed it
// (its own observedGeneration ≥ generation), otherwise the previous value
// is kept — so `kubectl rollout status` waits for every member. Conditions:
// Available is True only if every member says so; Progressing is False
// with ProgressDeadlineExceeded if any member's is, naming the cluster.
func AggregateStatus(host *unstructured.Unstructured, members []MemberObject) map[string]any {
	if agg, ok := kindAggregators[host.GetKind()]; ok {
		return agg(host, members)
	}
	if !replicaKinds[host.GetKind()] {
		return nil
	}
	prev, _, _ := unstructured.NestedMap(host.Object, "status")
	observed, _, _ := unstructured.NestedInt64(prev, "observedGeneration")
	all := len(members) > 0
	var replicas, ready, updated, available, current int64
	available2 := true
	var progressingFalse, notAvailable []string
	for _, m := range members {
		if m.Obj == nil {
			all, available2 = false, false
			continue
		}
		st, _, _ := unstructured.NestedMap(m.Obj.Object, "status")
		og, _, _ := unstructured.NestedInt64(st, "observedGeneration")
		if m.Obj.GetAnnotations()[v1alpha1.AnnotationHash] != m.Hash || og < m.Obj.GetGeneration() {
			all = false
		}
		replicas += num(st, "replicas")
		ready += num(st, "readyReplicas")
		updated += num(st, "updatedReplicas")
		available += num(st, "availableReplicas")
		current += num(st, "currentReplicas")
		gotAvail := false
		conds, _, _ := unstructured.NestedSlice(st, "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			switch cm["type"] {
			case "Available":
				gotAvail = cm["status"] == "True"
			case "Progressing":
				if cm["status"] == "False" && cm["reason"] == "ProgressDeadlineExceeded" {
					progressingFalse = append(progressingFalse, m.Cluster)
				}
			}
		}
		if host.GetKind() == "Deployment" && !gotAvail {
			available2 = false
			notAvailable = append(notAvailable, m.Cluster)
		}
	}
	if all {
		observed = host.GetGeneration()
	}
	out := map[string]any{
		"observedGeneration": observed,
		"replicas":           replicas,
		"readyReplicas":      ready,
		"updatedReplicas":    updated,
		"availableReplicas":  available,
	}
	switch host.GetKind() {
	case "StatefulSet":
		out["currentReplicas"] = current
	case "Deployment":
		var conds []any
		if len(members) > 0 {
			st, reason, msg := "True", "MinimumReplicasAvailable", "every member cluster reports Available"
			if !available2 {
				st, reason, msg = "False", "MemberUnavailable", "not available in: "+strings.Join(notAvailable, ", ")
			}
			conds = append(conds, condition("Available", st, reason, msg, prev))
			if len(progressingFalse) > 0 {
				sort.Strings(progressingFalse)
				conds = append(conds, condition("Progressing", "False", "ProgressDeadlineExceeded",
					fmt.Sprintf("progress deadline exceeded in: %s", strings.Join(progressingFalse, ", ")), prev))
			} else {
				conds = append(conds, condition("Progressing", "True", "FederatedRollout", "members are rolling out or done", prev))
			}
		}
		if conds != nil {
			out["conditions"] = conds
		}
	}
	return out
}

func num(m map[string]any, k string) int64 {
	v, _, _ := unstructured.NestedInt64(m, k)
	return v
}

// condition builds a workload condition, keeping lastTransitionTime (and
// lastUpdateTime) from prev when the status did not change.
func condition(typ, status, reason, msg string, prev map[string]any) map[string]any {
	c := map[string]any{"type": typ, "status": status, "reason": reason, "message": msg}
	conds, _, _ := unstructured.NestedSlice(prev, "conditions")
	for _, p := range conds {
		pm, _ := p.(map[string]any)
		if pm["type"] == typ && pm["status"] == status {
			for _, k := range []string{"lastTransitionTime", "lastUpdateTime"} {
				if v, ok := pm[k]; ok {
					c[k] = v
				}
			}
			return c
		}
	}
	now := nowRFC3339()
	c["lastTransitionTime"] = now
	c["lastUpdateTime"] = now
	return c
}

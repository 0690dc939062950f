package controller

import (
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
)

// kindAggregators aggregate kinds whose status is not replica-counting.
var kindAggregators = map[string]func(host *unstructured.Unstructured, members []MemberObject) map[string]any{
	"DaemonSet": aggregateDaemonSet,
	"Job":       aggregateJob,
}

// observedAll reports whether every member holds the current rendering
// and its controller has observed it (status.observedGeneration ≥
// generation).
func observedAll(members []MemberObject) bool {
	if len(members) == 0 {
		return false
	}
	for _, m := range members {
		if m.Obj == nil || m.Obj.GetAnnotations()[v1alpha1.AnnotationHash] != m.Hash {
			return false
		}
		og, _, _ := unstructured.NestedInt64(m.Obj.Object, "status", "observedGeneration")
		if og < m.Obj.GetGeneration() {
			return false
		}
	}
	return true
}

// aggregateDaemonSet sums the DaemonSet counters over members;
// observedGeneration follows the Deployment rule, so `kubectl rollout
// status daemonset/X` on the host waits for every member.
func aggregateDaemonSet(host *unstructured.Unstructured, members []MemberObject) map[string]any {
	prev, _, _ := unstructured.NestedMap(host.Object, "status")
	observed, _, _ := unstructured.NestedInt64(prev, "observedGeneration")
	if observedAll(members) {
		observed = host.GetGeneration()
	}
	out := map[string]any{"observedGeneration": observed}
	for _, f := range []string{"currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
		"updatedNumberScheduled", "numberAvailable", "numberUnavailable"} {
		var sum int64
		for _, m := range members {
			if m.Obj != nil {
				st, _, _ := unstructured.NestedMap(m.Obj.Object, "status")
				sum += num(st, f)
			}
		}
		out[f] = sum
	}
	return out
}

// aggregateJob sums active, ready, succeeded and failed pods over members.
// The Job is Complete when it is complete in every member it was sent to
// and Failed as soon as it failed in one; the conditions the Job API
// requires before a terminal one (SuccessCriteriaMet, FailureTarget) are
// set with it, startTime is the first member start and completionTime the
// last member completion. Terminal conditions and both times, once set,
// never change (the API rejects that).
func aggregateJob(host *unstructured.Unstructured, members []MemberObject) map[string]any {
	prev, _, _ := unstructured.NestedMap(host.Object, "status")
	out := map[string]any{}
	var active, ready, succeeded, failed int64
	var start, completion string
	complete := len(members) > 0
	var failedIn []string
	failMsg := ""
	for _, m := range members {
		if m.Obj == nil {
			complete = false
			continue
		}
		st, _, _ := unstructured.NestedMap(m.Obj.Object, "status")
		active += num(st, "active")
		ready += num(st, "ready")
		succeeded += num(st, "succeeded")
		failed += num(st, "failed")
		if s, _ := st["startTime"].(string); s != "" && (start == "" || s < start) {
			start = s
		}
		memberComplete, memberFailed := false, false
		conds, _, _ := unstructured.NestedSlice(st, "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["status"] != "True" {
				continue
			}
			switch cm["type"] {
			case "Complete":
				memberComplete = true
			case "Failed":
				memberFailed = true
				if msg, _ := cm["message"].(string); msg != "" && failMsg == "" {
					failMsg = msg
				}
			}
		}
		if memberFailed {
			failedIn = append(failedIn, m.Cluster)
		}
		if !memberComplete {
			complete = false
		} else if s, _ := st["completionTime"].(string); s > completion {
			completion = s
		}
	}
	// The Job API refuses a succeeded or failed counter that goes down;
	// it would when a member leaves (unjoin) or its copy is removed.
	succeeded = max(succeeded, num(prev, "succeeded"))
	failed = max(failed, num(prev, "failed"))
	for _, kv := range []struct {
		k string
		v int64
	}{{"active", active}, {"ready", ready}, {"succeeded", succeeded}, {"failed", failed}} {
		out[kv.k] = kv.v
	}
	if s, _ := prev["startTime"].(string); s != "" {
		start = s
	}
	if start != "" {
		out["startTime"] = start
	}
	prevComplete, prevFailed := hasTrue(prev, "Complete"), hasTrue(prev, "Failed")
	var conds []any
	switch {
	case prevComplete || (!prevFailed && complete && len(failedIn) == 0 && active == 0 && start != ""):
		if c, _ := prev["completionTime"].(string); c != "" {
			completion = c
		}
		if completion == "" || completion < start {
			completion = start
		}
		out["completionTime"] = completion
		conds = append(conds,
			condition("SuccessCriteriaMet", "True", "CompletionsReached", "complete in every member cluster", prev),
			condition("Complete", "True", "CompletionsReached", "complete in every member cluster", prev))
	case prevFailed || (len(failedIn) > 0 && active == 0 && start != ""):
		sort.Strings(failedIn)
		msg := "failed in: " + strings.Join(failedIn, ", ")
		if failMsg != "" {
			msg += ": " + failMsg
		}
		conds = append(conds,
			condition("FailureTarget", "True", "MemberFailed", msg, prev),
			condition("Failed", "True", "MemberFailed", msg, prev))
	}
	if conds != nil {
		out["conditions"] = conds
	}
	return out
}

func hasTrue(status map[string]any, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(status, "conditions")
	for _, c := range conds {
		if cm, _ := c.(map[string]any); cm["type"] == typ && cm["status"] == "True" {
			return true
		}
	}
	return false
}

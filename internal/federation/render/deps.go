package render

import (
	"sort"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keelson-dev/keelson/internal/federation/override"
)

// Dependency is an object in the workload's namespace its pods need.
type Dependency struct {
	Kind string // ConfigMap, Secret or ServiceAccount
	Name string
}

// Dependencies returns the ConfigMaps, Secrets and ServiceAccounts obj's
// pod template references (volumes, projected volumes, env, envFrom,
// imagePullSecrets, serviceAccountName other than "default"), sorted.
func Dependencies(obj *unstructured.Unstructured) []Dependency {
	spec, _ := override.PodSpec(obj.Object)
	if spec == nil {
		return nil
	}
	set := map[Dependency]bool{}
	add := func(kind string, name any) {
		if s, ok := name.(string); ok && s != "" {
			set[Dependency{kind, s}] = true
		}
	}
	if sa, _ := spec["serviceAccountName"].(string); sa != "" && sa != "default" {
		add("ServiceAccount", sa)
	}
	for _, s := range asList(spec["imagePullSecrets"]) {
		add("Secret", s["name"])
	}
	for _, v := range asList(spec["volumes"]) {
		if cm, ok := v["configMap"].(map[string]any); ok {
			add("ConfigMap", cm["name"])
		}
		if s, ok := v["secret"].(map[string]any); ok {
			add("Secret", s["secretName"])
		}
		if p, ok := v["projected"].(map[string]any); ok {
			for _, src := range asList(p["sources"]) {
				if cm, ok := src["configMap"].(map[string]any); ok {
					add("ConfigMap", cm["name"])
				}
				if s, ok := src["secret"].(map[string]any); ok {
					add("Secret", s["name"])
				}
			}
		}
	}
	for _, field := range []string{"initContainers", "containers"} {
		for _, c := range asList(spec[field]) {
			for _, ef := range asList(c["envFrom"]) {
				if r, ok := ef["configMapRef"].(map[string]any); ok {
					add("ConfigMap", r["name"])
				}
				if r, ok := ef["secretRef"].(map[string]any); ok {
					add("Secret", r["name"])
				}
			}
			for _, e := range asList(c["env"]) {
				vf, _ := e["valueFrom"].(map[string]any)
				if r, ok := vf["configMapKeyRef"].(map[string]any); ok {
					add("ConfigMap", r["name"])
				}
				if r, ok := vf["secretKeyRef"].(map[string]any); ok {
					add("Secret", r["name"])
				}
			}
		}
	}
	out := make([]Dependency, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ReplicaRequests returns the CPU (millicores) and memory (bytes) one
// replica of obj requests: the sum over containers (init containers'
// maximum if larger, as the scheduler counts them).
func ReplicaRequests(obj *unstructured.Unstructured) (milliCPU, memory int64) {
	spec, _ := override.PodSpec(obj.Object)
	if spec == nil {
		return 0, 0
	}
	sum := func(field string, agg func(a, b int64) int64) (int64, int64) {
		var cpu, mem int64
		for _, c := range asList(spec[field]) {
			req, _, _ := unstructured.NestedStringMap(c, "resources", "requests")
			if q, err := resource.ParseQuantity(req["cpu"]); err == nil {
				cpu = agg(cpu, q.MilliValue())
			}
			if q, err := resource.ParseQuantity(req["memory"]); err == nil {
				mem = agg(mem, q.Value())
			}
		}
		return cpu, mem
	}
	cpu, mem := sum("containers", func(a, b int64) int64 { return a + b })
	icpu, imem := sum("initContainers", func(a, b int64) int64 { return max(a, b) })
	return max(cpu, icpu), max(mem, imem)
}

func asList(v any) []map[string]any {
	l, _ := v.([]any)
	out := make([]map[string]any, 0, len(l))
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

package override

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
)

// Policy is one override policy as the controller has it.
type Policy struct {
	// ClusterWide is set for a ClusterOverridePolicy.
	ClusterWide bool
	Name        string
	Spec        v1alpha1.OverrideSpec
}

// Sort orders policies the way they are applied: cluster-wide first,
// then namespaced, each by name.
func Sort(ps []Policy) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].ClusterWide != ps[j].ClusterWide {
			return ps[i].ClusterWide
		}
		return ps[i].Name < ps[j].Name
	})
}

// Apply applies the policies that select obj, in order, to obj (changed
// in place) for cluster c. It returns the names of the policies applied.
func Apply(obj *unstructured.Unstructured, c *placement.ClusterInfo, policies []Policy) ([]string, error) {
	ps := append([]Policy(nil), policies...)
	Sort(ps)
	var applied []string
	for _, p := range ps {
		if !SelectsAny(p.Spec.ResourceSelectors, obj) {
			continue
		}
		used := false
		for ri, rule := range p.Spec.Rules {
			if ok, _ := placement.MatchAffinity(rule.TargetCluster, c); !ok {
				continue
			}
			if err := applyOverriders(obj, &rule.Overriders); err != nil {
				return applied, fmt.Errorf("override policy %s rule %d: %w", p.Name, ri, err)
			}
			used = true
		}
		if used {
			applied = append(applied, p.Name)
		}
	}
	return applied, nil
}

// SelectsAny reports whether any selector matches obj; no selectors match
// everything.
func SelectsAny(sels []v1alpha1.ResourceSelector, obj *unstructured.Unstructured) bool {
	if len(sels) == 0 {
		return true
	}
	for i := range sels {
		if Selects(&sels[i], obj) > 0 {
			return true
		}
	}
	return false
}

// Selects returns how specifically sel matches obj: 0 no match, 1 by
// kind, 2 by label selector, 3 by name.
func Selects(sel *v1alpha1.ResourceSelector, obj *unstructured.Unstructured) int {
	if sel.APIVersion != obj.GetAPIVersion() || sel.Kind != obj.GetKind() {
		return 0
	}
	if sel.Namespace != "" && sel.Namespace != obj.GetNamespace() {
		return 0
	}
	if sel.Name != "" {
		if sel.Name != obj.GetName() {
			return 0
		}
		return 3
	}
	if sel.LabelSelector != nil {
		s, err := labelSelector(sel.LabelSelector)
		if err != nil || !s.Matches(labelSet(obj.GetLabels())) {
			return 0
		}
		return 2
	}
	return 1
}

func applyOverriders(obj *unstructured.Unstructured, o *v1alpha1.Overriders) error {
	if len(o.Labels) > 0 {
		obj.SetLabels(mergeStrings(obj.GetLabels(), o.Labels))
	}
	if len(o.Annotations) > 0 {
		obj.SetAnnotations(mergeStrings(obj.GetAnnotations(), o.Annotations))
	}
	if len(o.Image) > 0 || len(o.Args) > 0 || len(o.Env) > 0 {
		if err := overrideContainers(obj, o); err != nil {
			return err
		}
	}
	if len(o.JSONPatch) > 0 {
		if err := applyJSONPatch(obj, o.JSONPatch); err != nil {
			return err
		}
	}
	return nil
}

// mergeStrings sets keys with a value and deletes keys set to null.
func mergeStrings(cur map[string]string, set map[string]*string) map[string]string {
	out := make(map[string]string, len(cur)+len(set))
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	return out
}

// podSpecPaths are where pod specs live, tried in order.
var podSpecPaths = [][]string{
	{"spec", "template", "spec"},
	{"spec", "jobTemplate", "spec", "template", "spec"},
	{"spec"},
}

// PodSpec returns the pod spec inside obj and its path, or nil.
func PodSpec(obj map[string]any) (map[string]any, []string) {
	for _, p := range podSpecPaths {
		m, ok, _ := unstructured.NestedMap(obj, p...)
		if !ok {
			continue
		}
		if _, has := m["containers"]; has {
			return m, p
		}
	}
	return nil, nil
}

func overrideContainers(obj *unstructured.Unstructured, o *v1alpha1.Overriders) error {
	spec, path := PodSpec(obj.Object)
	if spec == nil {
		return fmt.Errorf("image/args/env overrides need a pod template, %s has none", obj.GetKind())
	}
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, item := range list {
			ctr, ok := item.(map[string]any)
			if !ok {
				continue
			}
			name, _ := ctr["name"].(string)
			for _, io := range o.Image {
				if io.Container == "" || io.Container == name {
					img, _ := ctr["image"].(string)
					ctr["image"] = rewriteImage(img, io)
				}
			}
			for _, ao := range o.Args {
				if ao.Container != "" && ao.Container != name {
					continue
				}
				cur, _ := ctr["args"].([]any)
				if ao.Operator == "append" {
					ctr["args"] = append(cur, toAny(ao.Args)...)
				} else {
					ctr["args"] = toAny(ao.Args)
				}
			}
			for _, eo := range o.Env {
				if eo.Container != "" && eo.Container != name {
					continue
				}
				env, err := overrideEnv(ctr["env"], eo)
				if err != nil {
					return err
				}
				ctr["env"] = env
			}
		}
	}
	return unstructured.SetNestedMap(obj.Object, spec, path...)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func overrideEnv(cur any, eo v1alpha1.EnvOverride) ([]any, error) {
	list, _ := cur.([]any)
	var out []any
	for _, e := range list {
		m, _ := e.(map[string]any)
		n, _ := m["name"].(string)
		drop := false
		for _, r := range eo.Remove {
			drop = drop || r == n
		}
		if !drop {
			out = append(out, e)
		}
	}
	for _, ev := range eo.Env {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encoding env %s: %w", ev.Name, err)
		}
		var m map[string]any
		if err := utiljson.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("encoding env %s: %w", ev.Name, err)
		}
		replaced := false
		for i, e := range out {
			if em, _ := e.(map[string]any); em["name"] == ev.Name {
				out[i] = m
				replaced = true
			}
		}
		if !replaced {
			out = append(out, m)
		}
	}
	return out, nil
}

// rewriteImage applies io to ref = [registry/]repository[:tag|@digest].
func rewriteImage(ref string, io v1alpha1.ImageOverride) string {
	if io.Image != "" {
		return io.Image
	}
	registry, repo, tag := splitImage(ref)
	if io.Registry != "" {
		registry = io.Registry
	}
	if io.Repository != "" {
		repo = io.Repository
	}
	if io.Tag != "" {
		tag = ":" + io.Tag
	}
	if registry != "" {
		return registry + "/" + repo + tag
	}
	return repo + tag
}

// splitImage splits ref into registry (if the first path part looks like
// a host), repository and tag-or-digest (with its ':' or '@').
func splitImage(ref string) (registry, repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref, tag = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		ref, tag = ref[:i], ref[i:]
	}
	if i := strings.Index(ref, "/"); i >= 0 {
		first := ref[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			return first, ref[i+1:], tag
		}
	}
	return "", ref, tag
}

func applyJSONPatch(obj *unstructured.Unstructured, ops []v1alpha1.JSONPatchOp) error {
	doc, err := json.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("encoding object: %w", err)
	}
	patchJSON, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding json patch: %w", err)
	}
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		return fmt.Errorf("decoding json patch: %w", err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		return fmt.Errorf("applying json patch: %w", err)
	}
	m := map[string]any{}
	// utiljson keeps integers int64, as unstructured objects expect.
	if err := utiljson.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("decoding patched object: %w", err)
	}
	obj.Object = m
	return nil
}

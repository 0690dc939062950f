package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/keelson-dev/keelson/internal/federation/api/v1alpha1"
	"github.com/keelson-dev/keelson/internal/federation/placement"
	"github.com/keelson-dev/keelson/internal/federation/render"
)

// ExplainOptions name the object to explain.
type ExplainOptions struct {
	// APIVersion and Kind, e.g. apps/v1 Deployment. APIVersion may be
	// empty: discovery picks the preferred version.
	APIVersion, Kind string
	Namespace, Name  string
	Placement        []placement.PluginConfig
}

// Explain prints which policy selects the object and, for every cluster,
// whether it is selected and why (filter verdicts, scores, spread,
// replicas), computed the way the controller computes it now.
func Explain(ctx context.Context, host *rest.Config, o ExplainOptions, w io.Writer) error {
	dyn, err := dynamic.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(host)
	if err != nil {
		return fmt.Errorf("host client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return fmt.Errorf("bad apiVersion %q: %w", o.APIVersion, err)
	}
	var versions []string
	if gv.Version != "" {
		versions = append(versions, gv.Version)
	}
	gk := schema.ParseGroupKind(o.Kind)
	if gk.Group == "" {
		gk.Group = gv.Group
	}
	mapping, err := mapper.RESTMapping(gk, versions...)
	if err != nil {
		return fmt.Errorf("unknown kind %q: %w", o.Kind, err)
	}
	obj, err := dyn.Resource(mapping.Resource).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", o.Kind, o.Name, err)
	}
	var pols []policy
	for _, r := range []struct {
		gvr         schema.GroupVersionResource
		clusterWide bool
	}{{v1alpha1.PropagationPoliciesGVR, false}, {v1alpha1.ClusterPropagationPolicyGVR, true}} {
		ns := o.Namespace
		if r.clusterWide {
			ns = ""
		}
		list, err := dyn.Resource(r.gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s (are the federation CRDs installed?): %w", r.gvr.Resource, err)
		}
		for _, u := range list.Items {
			var p v1alpha1.PropagationPolicy
			if err := v1alpha1.FromUnstructured(u.Object, &p); err != nil {
				continue
			}
			name := u.GetNamespace() + "/" + u.GetName()
			if r.clusterWide {
				name = "cluster/" + u.GetName()
			}
			pols = append(pols, policy{name: name, clusterWide: r.clusterWide, spec: p.Spec})
		}
	}
	fmt.Fprintf(w, "%s %s/%s\n", mapping.GroupVersionKind.Kind, o.Namespace, o.Name)
	pol, ok := MatchPolicy(obj, pols)
	if !ok {
		fmt.Fprintln(w, "policy: none selects this object (it propagates only as a dependency of a workload, if any)")
		return nil
	}
	fmt.Fprintf(w, "policy: %s (priority %d)\n", pol.name, pol.spec.Priority)
	list, err := dyn.Resource(v1alpha1.ClustersGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing clusters: %w", err)
	}
	var infos []*placement.ClusterInfo
	prev := map[string]bool{}
	var bs []v1alpha1.ClusterBreakdown
	if a := obj.GetAnnotations()[v1alpha1.AnnotationClusters]; a != "" && json.Unmarshal([]byte(a), &bs) == nil {
		for _, b := range bs {
			if b.Applied {
				prev[b.Cluster] = true
			}
		}
	}
	for i := range list.Items {
		var cl v1alpha1.Cluster
		if err := v1alpha1.FromUnstructured(list.Items[i].Object, &cl); err != nil {
			continue
		}
		infos = append(infos, clusterInfo(&cl))
	}
	replicas, hasReplicas := render.Replicas(obj)
	req := &placement.Request{Placement: pol.spec.Placement, HasReplicas: hasReplicas, Replicas: replicas, Previous: prev, KeepUnready: map[string]bool{}}
	if pol.spec.Failover == nil {
		for cl := range prev {
			req.KeepUnready[cl] = true
		}
	}
	req.ReplicaMilliCPU, req.ReplicaMemory = render.ReplicaRequests(obj)
	sched, err := placement.New(o.Placement)
	if err != nil {
		return err
	}
	res, schedErr := sched.Schedule(ctx, req, infos)
	if hasReplicas {
		fmt.Fprintf(w, "replicas: %d", replicas)
		if rs := pol.spec.Placement.ReplicaScheduling; rs != nil && rs.Type == v1alpha1.Divided {
			fmt.Fprintf(w, " divided (%s)", rs.Preference)
		} else {
			fmt.Fprint(w, " duplicated")
		}
		fmt.Fprintln(w)
	}
	if res != nil && res.AffinityName != "" {
		fmt.Fprintf(w, "cluster affinity group: %s\n", res.AffinityName)
	}
	if res != nil && res.Unplaced > 0 {
		fmt.Fprintf(w, "unplaced replicas: %d (every cluster at its max)\n", res.Unplaced)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSELECTED\tREPLICAS\tSCORE\tREASON")
	if res != nil {
		for _, d := range res.Decisions {
			reps := "-"
			if d.Replicas != nil {
				reps = strconv.Itoa(int(*d.Replicas))
			}
			sel := "no"
			if d.Selected {
				sel = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", d.Cluster, sel, reps, d.Score, d.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if schedErr != nil {
		if errors.Is(schedErr, placement.ErrNoCluster) {
			fmt.Fprintf(w, "result: not placed: %v\n", schedErr)
			return nil
		}
		return schedErr
	}
	return nil
}

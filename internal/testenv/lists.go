package testenv

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// ConfigMapNames lists every ConfigMap of cms in pages of 500 (as
// kube-apiserver clients do) and returns the set of names.
func ConfigMapNames(ctx context.Context, cms corev1client.ConfigMapInterface) (map[string]bool, error) {
	have := map[string]bool{}
	opts := metav1.ListOptions{Limit: 500}
	for page := 1; ; page++ {
		list, err := cms.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing page %d: %w", page, err)
		}
		for _, cm := range list.Items {
			have[cm.Name] = true
		}
		if list.Continue == "" {
			return have, nil
		}
		opts.Continue = list.Continue
	}
}

// Missing returns the names of want that have does not hold, in want's
// order.
func Missing(want []string, have map[string]bool) []string {
	var out []string
	for _, name := range want {
		if !have[name] {
			out = append(out, name)
		}
	}
	return out
}

// Package schedcompat is a test-only module: a differential test of
// keelson scheduler's feasibility decisions against kube-scheduler
// v1.36.3's own filter plugins (imported from the pinned
// k8s.io/kubernetes). It generates random clusters and pods from fixed
// seeds — resources (init and sidecar containers, extended resources),
// nodeSelector and required node affinity, taints and tolerations,
// cordoned nodes, host ports, required pod affinity and anti-affinity
// (namespaces, namespaceSelector, existing pods' anti-affinity), hard
// topology spread (minDomains, node inclusion policies, matchLabelKeys)
// and nodeName — runs PreFilter and Filter of both schedulers' plugins on
// every (pod, node) and requires the same set of feasible nodes.
//
// It lives in its own module so that the main module does not depend on
// k8s.io/kubernetes. Run it with `cd hack/schedcompat && go test ./...`
// (part of `make test`).
package schedcompat

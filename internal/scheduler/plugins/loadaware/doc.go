// Package loadaware scores nodes by their real load rather than by the
// requests placed on them. A node's usage comes, in this order, from
// metrics.k8s.io NodeMetrics (with args metricsAPI: true; listed from
// /apis/metrics.k8s.io/v1beta1/nodes, e.g. served by metrics-server, and
// refreshed in the background when a scheduling cycle finds the list older
// than metricsIntervalSeconds), from the node annotations
// keelson.dev/cpu-usage and keelson.dev/memory-usage (Kubernetes
// quantities, e.g. "3500m" and "12Gi"), which a metrics agent — or kwok's
// simulated usage — keeps up to date, and otherwise from the sum of its
// pods' requests. Usage older than maxAgeSeconds (NodeMetrics timestamp,
// or keelson.dev/usage-time) is ignored. The score prefers the node that
// stays least loaded once the pod's requests are added; with
// thresholdPercent set, nodes already loaded above it are filtered out.
package loadaware

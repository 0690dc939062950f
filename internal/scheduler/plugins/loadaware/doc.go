// Package loadaware scores nodes by their real load rather than by the
// requests placed on them. A node's usage comes from the annotations
// keelson.dev/cpu-usage and keelson.dev/memory-usage (Kubernetes
// quantities, e.g. "3500m" and "12Gi"), which a metrics agent — or kwok's
// simulated usage — keeps up to date; a node without them (or whose
// annotations are older than maxAgeSeconds, per keelson.dev/usage-time)
// falls back to the sum of its pods' requests. The score prefers the
// node that stays least loaded once the pod's requests are added; with
// thresholdPercent set, nodes already loaded above it are filtered out.
package loadaware

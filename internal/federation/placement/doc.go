// Package placement decides which member clusters an object goes to and how
// many replicas each gets.
//
// It mirrors the scheduler framework (internal/scheduler/framework) at
// cluster granularity: every step is a plugin with a Name(), one tiny
// interface per extension point (FilterPlugin, ScorePlugin), a *Status
// where nil means success, and registration from init() in the project's
// one registry under "federation.placement.<name>". A Scheduler is built
// from an ordered list of plugin names (DefaultPlugins when none).
//
// One decision runs:
//
//  1. for each cluster affinity term in order (fallback groups; a single
//     ClusterAffinity is one term), Filter every cluster; the first term
//     with a feasible cluster wins;
//  2. Score the feasible clusters (each scorer's raw scores are normalised
//     to 0..100 by the highest, then summed with the plugin's weight);
//  3. apply spread constraints (keep the best MinGroups..MaxGroups groups
//     of region, zone or cluster);
//  4. share the replicas: Duplicated gives each cluster all of them;
//     Divided uses Divide, a sequential divisor method that is monotonic
//     (raising the total never lowers any cluster's share) and honours
//     per-cluster min/max.
//
// Result keeps a Decision per cluster, which is what `keelson federation
// explain` prints.
package placement

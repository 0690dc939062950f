// Command scheduler benchmarks keelson scheduler against kube-scheduler
// v1.36.3 on one kube-apiserver on keelson store, with Node objects only
// (no kubelet or kwok: nodes are created Ready, without taints, and never
// run pods). Each scheduler runs alone in turn — keelson with one
// instance, keelson with three, kube-scheduler — with the same client
// QPS and burst, on workloads named after kube-scheduler's
// scheduler_perf: SchedulingBasic, SchedulingPodAntiAffinity,
// SchedulingPodAffinity, TopologySpreading, Preemption and a gang
// (keelson only: kube-scheduler v1.36 has no PodGroup API enabled by
// default).
//
// Measured per run: pods/s from the first creation to the last binding
// seen; scheduler CPU-seconds per 1,000 pods (utime+stime from
// /proc/PID/stat, summed over instances); p50/p99 latency from the
// creation call returning to the binding arriving on a watch; resident
// memory (VmRSS) at the end of the run, largest instance.
//
// Usage: go run ./bench/scheduler --bin bin --mode quick --out docs/benchmarks-scheduler.md
package main

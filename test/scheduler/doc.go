// Package scheduler runs keelson scheduler, as `bin/keelson scheduler`
// subprocesses, against kube-apiserver v1.36.3 on keelson store with kwok
// nodes whose capacity the tests choose, and checks every run with the
// placement validator (internal/scheduler/validate):
//
//   - constraints: resources, nodeSelector and node affinity, taints, pod
//     anti-affinity, topology spread, host ports; an unschedulable pod gets
//     PodScheduled=False with kube-scheduler's style of message, and events
//     name the keelson-scheduler component;
//   - preemption: a high-priority pod evicts lower-priority ones on a full
//     cluster;
//   - gangs: a PodGroup (the gang plugin's CRD, installed by the test) that
//     fits binds all its members; one that cannot fit binds none and holds
//     no room;
//   - three scheduler instances without a leader race for a few hundred
//     pods on a few tightly sized nodes: no node overcommitted, every pod
//     that has room bound.
//
// One kube-apiserver serves all subtests; each subtest creates its own
// nodes and namespace and removes its pods and nodes at the end. The
// binaries come from bin/ (`make tools`, `make build`) or KEELSON_BIN. The
// test is skipped with -short.
package scheduler

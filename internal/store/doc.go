// Package store serves the etcd v3 gRPC API (KV, Watch, Lease,
// Maintenance, Cluster) on top of a backend.Backend storage engine, so that
// kube-apiserver and etcdctl talk to it exactly as to etcd 3.6.
//
// The package is cut like kine's pkg/server, one file per operation family:
//
//   - config.go: Config with Default and Validate.
//   - server.go: Server lifecycle (New, Start, Serve, Close), gRPC and
//     metrics listeners, response headers.
//   - kv.go: Range, Put, DeleteRange, Txn and Compact handlers and their
//     request validation (etcd's own rules and errors).
//   - txn.go: the transaction evaluator. Every Put, DeleteRange and Txn
//     becomes one backend.Update whose function evaluates compares,
//     computes each key's CreateRevision, Version and PrevKV, and calls
//     WriteTx.Apply once, at Revision()+1, only if something changed.
//     Read-only requests run in backend.View.
//   - watch.go: the watch hub (one backend.Watch subscription, a ring of
//     recent events) and the Watch stream. Each watcher keeps a cursor (the
//     next revision it must see); a stream's single sender goroutine moves
//     every cursor forward from the ring, or from backend.Events when the
//     ring has moved on, so a slow watcher never loses events and is
//     cancelled with the compact revision when its history is gone.
//     Progress notifications go through the same goroutine and are
//     therefore ordered with events.
//   - lease.go: the lessor. Leases are backend records; grants, keep-alives
//     and revocations are Updates; an expiry loop revokes expired leases
//     (rechecking expiry inside the Update), deleting attached keys with
//     delete events.
//   - maintenance.go, cluster.go: Status, Alarm, Defragment, MemberList.
//   - metrics.go: a private Prometheus registry per Server and the HTTP
//     endpoint serving /metrics, /health, /readyz and /debug/pprof.
//   - errors.go: mapping of backend errors to etcd's rpctypes errors.
//
// An empty store starts at revision 1 (Start applies an empty revision 1
// if the engine is at 0), so the first write gets revision 2, as in etcd.
//
// Unsupported requests (Auth, lease checkpoints, snapshots, membership
// changes) get codes.Unimplemented, never a silent wrong answer.
package store

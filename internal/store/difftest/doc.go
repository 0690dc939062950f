// Package difftest is a differential test of keelson store against etcd.
//
// One scripted sequence of etcd v3 client operations — puts, ranges with
// every option, deletes, transactions with every compare target and nested
// transactions, watches (start revision, prefix, prev_kv, filters, progress
// requests, cancellation), leases, compaction, and the error cases around
// them — runs against a fresh embedded etcd (go.etcd.io/etcd/server/v3/embed)
// and against a fresh keelson store. Every response is rendered as text with
// what legitimately differs normalized away (cluster and member IDs, raft
// term, server-chosen lease IDs, the remaining TTL of a lease, the batching
// of watch events into responses); the two transcripts must be identical,
// step by step, including header revisions, create/mod revisions, versions,
// counts, more flags and gRPC error codes and messages. A mismatch prints the
// step and a line diff.
//
// The package is test-only:
//
//	go test ./internal/store/difftest/ -v
package difftest

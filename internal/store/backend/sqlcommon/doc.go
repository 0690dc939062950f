// Package sqlcommon is the engine shared by the PostgreSQL and MySQL
// backends: group commit, the transaction views, revision reads, the change
// feed, compaction and schema migration. A Dialect supplies what differs
// between databases (connections, DDL, upserts, notifications).
//
// # Data model
//
//	meta(id=1, rev, compact_rev)      the revision counter; write batches lock
//	                                  this row (SELECT … FOR UPDATE), so
//	                                  revisions are gapless and commit in order
//	kv_current(k PK, create_rev, mod_rev, version, lease, value)
//	                                  current state: ranges and counts at the
//	                                  current revision are index range scans
//	kv_history(rev, sub PK; k, rev UNIQUE; del, create_rev, version, lease,
//	           value, prev_rev)       every event; revision reads, Events and
//	                                  the change feed (PrevKV by self-join on
//	                                  k, prev_rev)
//	leases(id PK, ttl, expiry_ns)     granted leases
//	schema_version(version)           migrations applied
//
// # Round trips
//
// Statements that return nothing (history inserts, upserts, savepoints,
// the revision update, COMMIT) are queued on the Conn and sent together
// with the next statement that returns rows (pgx pipelining on PostgreSQL,
// multi-statements on MySQL), so a batch of N puts costs N+2 round trips
// and one commit.
package sqlcommon

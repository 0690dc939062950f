// Package sqlcommon is the engine shared by the PostgreSQL and MySQL
// backends: group commit, the transaction views, revision reads, the change
// feed, compaction and schema migration. A Dialect supplies what differs
// between databases (connections, DDL, upserts, notifications).
//
// # Data model
//
//	meta(id=1, rev, compact_rev)      the revision counter; a write batch locks
//	                                  this row (SELECT … FOR UPDATE) first, so
//	                                  writers on every instance are serialised,
//	                                  revisions are gapless and commit in order
//	                                  (no auto-increment involved); on
//	                                  MySQL, row id=2 is the change feed's
//	                                  log-sync counter (see Change feed)
//	kv_current(k PK, create_rev, mod_rev, version, lease, value; (lease, k))
//	                                  current state: ranges and counts at the
//	                                  current revision are index range scans
//	kv_history(rev, sub PK; (k, rev) UNIQUE; del, create_rev, version, lease,
//	           value, prev_rev)       every event: reads at past revisions
//	                                  (newest version <= rev per key), Events
//	                                  and the change feed; PrevKV by self-join
//	                                  on (k, prev_rev)
//	leases(id PK, ttl, expiry_ns)     granted leases, shared by all instances
//	schema_version(version)           migrations applied; a newer version than
//	                                  the build knows is refused
//	                                  (backend.ErrSchemaVersion)
//
// # Write path (group commit)
//
// One committer goroutine per instance takes every queued Update (up to
// Options.MaxBatch) and runs them in one read-committed transaction:
//
//  1. Probe: each function is run once against a probeTx that answers
//     from the write cache, records the keys it could not answer and
//     discards every write. Functions must therefore be safe to run more
//     than once; the store's are (each run starts a fresh evaluator).
//     Options.NoProbe turns this off.
//  2. BEGIN, lock the meta row and, in the same statement, load the probed
//     keys (present or absent) into the write cache: one round trip.
//  3. Run each function for real. Single-key reads at the current revision
//     are answered by the write cache, which is valid while no other
//     instance committed since this instance's last batch (the locked meta
//     revision tells; otherwise it is emptied). A miss is one round trip.
//     Apply only buffers rows. A function that fails has its buffered rows
//     dropped; if some of its writes already reached the database (it read
//     through the database after writing) a savepoint placed just before
//     them is rolled back to. So each function stays atomic, and the usual
//     function needs no savepoint at all.
//  4. Buffered rows become multi-row statements (history insert, kv_current
//     delete and upsert of each key's final state), sent with the meta
//     update, pg_notify on PostgreSQL, and COMMIT: one round trip.
//
// A batch of put-shaped functions therefore costs two round trips and one
// commit, whatever its size.
//
// Overlap (Options.Overlap; both dialects set it). While a batch's
// COMMIT (step 4) is in flight, the committer already probes the requests queued since and sends the next batch's step
// 2 on a second connection. The database blocks that locking read until
// the COMMIT is done and then answers it at once, so the lock round trip
// drops out of the critical path. The next batch's functions run, and its
// COMMIT is sent, only after the previous COMMIT was answered: revision
// order and "acknowledged means durable" are unchanged (an earlier
// experiment that sent a batch's writes before the previous COMMIT was
// answered lost acknowledged writes in the MariaDB crash test). Its
// prefetched rows may come from a snapshot taken before the previous
// commit; writeCache.fill keeps the cache's entries for keys the previous
// batch wrote, which are the only ones that can differ. If the previous
// batch fails before COMMIT, the overlapped one is rolled back and its
// requests run after the retry (the retry needs the meta lock it holds). A batch the server rejected, or that failed
// before COMMIT was sent, did not commit and is run again (then its
// functions one by one, so that one the database refuses fails alone); a
// broken connection during COMMIT leaves the outcome unknown and is
// reported, as etcd clients expect.
//
// # Change feed
//
// Watch reads kv_history above the last revision it delivered, in one
// snapshot, whole revisions at a time, whenever the known head revision
// grows. With Options.LocalFeed (both dialects set it), revisions
// this instance committed itself are served from memory instead
// (localFeed: the events of the last 256 batches, at most 32 MiB), which
// saves every instance's read cache from reading back each batch it just
// wrote; a watcher's first read, and any revision written by another
// instance, still go to the database. The head grows on local commits at once, and from other instances
// through Dialect.RunFeed (LISTEN/NOTIFY on PostgreSQL, an adaptive poll of
// the meta row on MySQL). The head only ever holds durable revisions: a
// local COMMIT is durable once answered, PostgreSQL makes a commit visible
// (and sends its NOTIFY) only after flushing it, but InnoDB shows a commit
// to other sessions before its redo is flushed, so the MySQL poller first
// commits a tiny write of its own (row 2 of meta, on the connection it
// polled with), whose flush covers every commit it could see, and the read
// cache's barrier revision (also merely visible) is not taken as a head
// there (ObserveVisible). A watcher handed a revision that a database
// crash then lost would take the writes that reuse its number for ones
// already delivered. Since revisions commit in order under the meta
// lock, a snapshot at revision R holds every revision <= R: no gaps, no
// duplicates. Database errors are retried from the same revision.
//
// # Compaction
//
// Compact moves meta.compact_rev (one short transaction), then deletes, in
// chunks of revisions each in its own transaction, history rows below the
// compaction revision that are deletes or have a newer version below it.
// Versions replaced exactly at the compaction revision stay as PrevKV of
// its events.
package sqlcommon

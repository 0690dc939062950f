// Package cache is a read cache for any backend.Backend: it wraps an
// engine, answers Range from memory when it can prove the answer is
// current, and passes everything else through.
//
// # What is kept
//
// The cache mirrors the engine's current state: every key with its
// metadata (create/mod revision, version, lease) in a B-tree, plus the
// values that fit in Options.MaxBytes. It is loaded from one snapshot at
// revision S and then follows the engine's change feed (Backend.Watch
// after S), so it always holds exactly the state at its applied revision
// A. A ring of the most recent events (with their PrevKV) lets it rebuild
// the state at any revision r with floor <= r <= A by undoing the events
// above r, so reads at recent past revisions (kube-apiserver's paginated
// lists read every page at the first page's revision) are served too.
//
// Values are evicted (CLOCK: a value read since the last sweep gets a
// second chance) when keys, metadata, history and values exceed MaxBytes;
// keys and metadata are never evicted, so Count, Limit/More and KeysOnly
// stay exact without values. If keys and metadata alone exceed the budget
// the cache turns itself off (every read passes through) and says so in
// the log and metrics.
//
// # Why an answer is current (linearizability)
//
// A read must reflect every write that completed before it began, on any
// store instance. View therefore first learns the engine's committed
// revision R with a barrier that starts after the read began: one tiny
// query (SELECT rev, compact_rev FROM meta) on the SQL engines (see
// NewSQLMeta), or an ordinary View of the engine otherwise. Concurrent
// reads share one barrier query, but only a query that started after a
// read arrived answers it. If the feed has applied A >= R, the read is
// served at A (a committed revision no older than any completed write);
// otherwise it goes to the engine. The barrier also returns the
// compaction revision, so reads below it fail with ErrCompacted exactly as
// the engine would, and CompactRevision is exact.
//
// Values missing from memory come from the optional shared Redis tier
// (keyed by mod revision and key, so entries are immutable; every value
// fetched is checked against the length and hash recorded from the feed
// before use) or else the whole Range goes to the engine at the view's
// revision, and the values it returns are kept.
//
// Leases, Update, Events, Watch, Compact and Status always go to the
// engine.
package cache

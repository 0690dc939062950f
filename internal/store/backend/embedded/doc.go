// Package embedded is keelson store's default storage engine: a write-ahead
// log in segment files under a data directory plus an in-memory MVCC index.
//
// # Layout
//
// The data directory holds a LOCK file (flock'ed while an Engine has it
// open, so two processes cannot share a directory) and segment files
// 0000000000000001.wal, 0000000000000002.wal, … Each segment starts with a
// header (magic and the revision the log was at before the segment's first
// record, see segment.go) and holds frames; a frame is what one group
// commit writes (length, CRC32C, body) and its body is a run of records
// (type, length, payload): one record per revision with that revision's
// events, lease puts, lease deletes, compactions, and reclamation's copy
// and mark records. See record.go for the byte layout. index.ckpt is the
// newest index checkpoint (see Recovery).
//
// # Index
//
// A B-tree (ctree.go) maps every key to its retained revisions (mod/create
// revision, version, lease, tombstone flag and where the value sits in the
// log). Values are not kept on the heap: reads fetch them with pread from
// the log (the page cache holds hot ones), so memory grows with the number
// of keys and revisions, not with value bytes. A second table maps every
// revision since the compaction point to its record in the log; Events and
// Watch replay decode those records and take PrevKV from the index.
//
// The B-tree also counts, in every subtree, the keys whose newest revision
// is a put, so the number of live keys in a range at the head is two
// root-to-leaf descents. A list of the keys written at recent revisions
// (the last 16-32k key writes, plus everything not yet published) turns
// that into the exact count at a reader's revision: only those keys can
// differ. A page (Limit) or CountOnly at such a revision therefore costs
// O(log n + page + recent writes in the range), however many keys follow
// the page; at an older revision the range is walked, as before.
//
// # Writes
//
// A single committer goroutine takes every queued Update and runs the
// functions one after the other against the live index. Entries a function
// adds carry revisions above the published (committed) revision, so readers
// cannot see them; if the function fails, its entries, lease changes and
// encoded records are rolled back, leaving the rest of the batch alone. The
// batch is then written as one frame with one write and fdatasync'ed.
// A publisher goroutine takes batches in order and, once a batch's sync is
// done, publishes its revision to View readers and the Watch feed and
// releases its callers. The committer does not wait for the sync: it builds
// and writes the next batch (on top of the unpublished one) while up to
// maxInflight batches wait, so fdatasyncs overlap and share journal
// commits. A batch is never published before the batches before it. If a
// write or sync fails, that batch and every later one fail and the engine
// refuses further writes (the state of the file is unknown), like etcd;
// reads keep serving the last published revision.
//
// # Compaction and reclamation
//
// Publishing a compaction only moves the compaction point and trims the
// revision table; a maintenance goroutine then walks the index in chunks of
// compactChunk keys (one short write-lock hold each) dropping the versions
// that became unreachable, and reclaims disk space: the oldest segments
// whose records are all at or below the compaction point, as long a prefix
// of them as has reachable values of at most half its bytes, get those
// values copied forward into the active log (copy records, committed
// through the committer in bounded chunks like any write), then a mark
// with the compaction point, the first segment kept and every live lease
// is committed, then the files are unlinked oldest first. Replay can start
// at any segment a mark allows; a crash at any step leaves a log that
// replays to the same state (copies of versions whose originals still
// exist only repoint the index). maint.go has the details. Readers hold
// references on the segment files they read from, so an unlinked file is
// closed only when its last read is done.
//
// # Recovery
//
// Open loads the index checkpoint (checkpoint.go) and replays the log
// after its position; without a usable one it replays the whole log. A
// checkpoint is the index as of the end of a published group commit,
// written by the maintenance goroutine once Options.CheckpointBytes of log
// (and at least four times the last checkpoint's size) has been written
// since the last one, when reclamation deletes the segment the last one
// starts in, and by Close. It goes to a temporary file that is fsync'ed
// and renamed into place, then the directory is fsync'ed. A checkpoint
// that is missing, damaged, of another format version, taken from another
// log, whose segment was reclaimed, or whose log tail does not replay is
// not used: Open logs why and replays the whole log, so a bad checkpoint
// costs time, never data.
//
// A damaged frame at the very end of the last segment is a commit whose
// write was torn by a crash before it was acknowledged: it is truncated
// away with a warning. Damage anywhere else in the log Open reads fails
// it with an error wrapping backend.ErrCorrupt.
//
// # Revisions
//
// An empty engine is at revision 1, as etcd is; the first Apply is
// revision 2. Events
// from a revision at or below the compaction point are ErrCompacted (their
// PrevKVs may be gone); Range at exactly the compaction point works.
//
// # Known limits
//
//   - Only a prefix of the log is reclaimed: a segment with many reachable
//     values (data written once and never changed) is kept, and so is every
//     segment after it until reclaiming the prefix up to it pays (reachable
//     values at most half its bytes). Reclamation copies each reachable
//     byte at most once per byte of garbage freed.
//   - Disk use between compactions is everything written since the last
//     one plus up to two segments; the active segment is never reclaimed.
//   - With a checkpoint, Open reads and checksums only the log after it:
//     damage in the log before the checkpoint's position is not noticed at
//     start (reads do not checksum values either). Writing a checkpoint
//     costs the whole index (tens of bytes per key, walked in chunks under
//     the read lock), so they are spaced to add at most a quarter to the
//     bytes written. After a crash, the log written since the last
//     checkpoint (up to CheckpointBytes, or four checkpoints' worth) is
//     replayed.
//   - A Count or page at a revision older than the recent-writes list
//     (more than 16-32k key writes ago) walks every key of its range, as
//     etcd does for every count; kube-apiserver reads later pages of a
//     list at the first page's revision, which is recent unless the list
//     is slow and writes are heavy.
//   - A Watch subscriber more than 1M events behind is dropped with an
//     error and must re-subscribe; events handed to Watch callbacks are
//     shared between subscribers and must not be modified.
package embedded

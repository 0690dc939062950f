// Package linearize checks keelson store's consistency guarantees on
// recorded histories of concurrent operations, across store instances that
// share one database.
//
// The tests start store servers in process (three on one PostgreSQL schema,
// three on one MariaDB/MySQL database, one on the embedded engine), run
// concurrent etcd clients — each bound to one instance — doing Put,
// linearizable Get, Txn compare-and-set on mod_revision and Delete on a
// small key set, and record every operation's call and return time and
// result. An operation whose outcome the client never learned (timeout,
// lost connection) is recorded as possibly applied: its return time is
// Infinity.
//
// The history is then checked three ways:
//
//   - Linearizability, with porcupine (github.com/anishathalye/porcupine)
//     against Model, a sequential etcd key (value, create and mod revision,
//     version), partitioned by key so each key is checked on its own.
//   - Revisions across keys (CheckRevisions): each successful write has its
//     own revision and revisions never go back in real time.
//   - Watch guarantees: a watcher on every instance from the revision the
//     run started at receives every revision exactly once, in order, with
//     create revisions and versions that follow from the events before
//     (CheckStream); the stream holds every acknowledged write at its
//     revision, nothing no client wrote or saw fail, and agrees with every
//     read at the read's revision (CheckAgainstHistory); watchers cancel and
//     resume from their last revision + 1 during the run, and every live
//     stream equals a fresh watch read back from the store afterwards.
//
// Fault variants close instances during the run and start replacements on
// the same database (the embedded engine: on the same data directory) —
// clients and watchers bound to a closed instance switch to its
// replacement, watchers resuming after the last revision they received —
// or make the database drop every connection of every instance, so that
// commits end with an outcome the store itself cannot know.
//
// TestCommitInDoubt and TestWatchSurvivesConnectionLoss are the minimal
// reproductions of what the connection-loss runs found: an SQL engine must
// not re-run a batch whose COMMIT may have happened (fixed in the
// PostgreSQL engine: FATAL errors are in doubt), and a database error while
// a watch stream reads must end the stream with codes.Unavailable, which
// clientv3 retries, never with codes.Unknown, which it treats as final
// (fixed: SQL engines mark connection errors backend.ErrUnavailable; the
// test fails on any server-ended watch unless -linearize.strict-watch=false).
//
// When porcupine finds a violation the test writes porcupine's HTML
// visualization to a temp file and prints its path (-linearize.viz writes
// it for passing runs too).
//
//	go test ./internal/store/linearize/
//	go test ./internal/store/linearize/ -run 'TestLinearizable/postgres' -v
//	go test ./internal/store/linearize/ -linearize.duration 10s
//	go test ./internal/store/linearize/ -run TestWatchSurvivesConnectionLoss -v
//
// PostgreSQL and MariaDB must be running (see
// internal/store/conformance/dbtest); a database that is down fails the test.
package linearize

package backend

import "errors"

// Sentinel errors. Engines wrap them with context (fmt.Errorf("…: %w", err));
// callers test with errors.Is. The store maps them to etcd's gRPC errors.
var (
	// ErrCompacted: the requested revision is older than the compaction point.
	ErrCompacted = errors.New("required revision has been compacted")
	// ErrFutureRevision: the requested revision is newer than the current one.
	ErrFutureRevision = errors.New("required revision is a future revision")
	// ErrLeaseNotFound: no lease with that ID.
	ErrLeaseNotFound = errors.New("requested lease not found")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("backend closed")
	// ErrCorrupt: the stored data failed a checksum or format check.
	ErrCorrupt = errors.New("stored data is corrupt")
	// ErrUnavailable: the storage could not be reached (connection lost,
	// database restarting); the request may be retried. For a write the
	// outcome may be unknown.
	ErrUnavailable = errors.New("storage temporarily unavailable")
	// ErrSchemaVersion: a database holds a schema this build cannot use.
	ErrSchemaVersion = errors.New("unsupported schema version")
)

package backend

import (
	"context"
	"time"
)

// KeyValue is one version of a key, as etcd reports it.
type KeyValue struct {
	Key            []byte
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64
}

// EventType says what an Event did to its key.
type EventType uint8

const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change to one key at one revision. A transaction that writes
// several keys produces several events with the same revision, in the order
// the transaction wrote them.
//
// For a put, KV is the new version. For a delete, KV carries the key and
// ModRevision = the deleting revision; every other field is zero.
// PrevKV is the version the event replaced, or nil if the key did not exist
// before (it is always filled when a previous version existed).
type Event struct {
	Type   EventType
	KV     KeyValue
	PrevKV *KeyValue
}

// Lease is a granted lease. Expiry is absolute wall-clock time; an engine
// persists ID and TTL and may persist Expiry (a restarted single-node store
// restarts every lease's clock at now+TTL, as etcd does).
type Lease struct {
	ID     int64
	TTL    int64 // seconds, as granted
	Expiry time.Time
}

// RangeOptions selects keys. End follows etcd: nil means the single key
// Key; "\x00" means every key >= Key; otherwise the half-open range
// [Key, End).
type RangeOptions struct {
	Key, End []byte
	// Revision reads the state as of that revision; 0 means current.
	Revision int64
	// Limit caps the number of KeyValues returned (0 = no cap). Count is
	// always the exact number of keys in the range.
	Limit int64
	// KeysOnly leaves Value nil. CountOnly returns no KeyValues.
	KeysOnly, CountOnly bool
}

// RangeResult is what Range returns. KVs are in key order.
type RangeResult struct {
	KVs   []KeyValue
	Count int64
	More  bool
	// Revision is the revision the range was read at (the store's current
	// revision when RangeOptions.Revision was 0).
	Revision int64
}

// ReadTx is a consistent read view.
type ReadTx interface {
	// Revision is the newest revision this view can see.
	Revision() int64
	// CompactRevision is the revision history was compacted to (0 if never).
	CompactRevision() int64
	// Range reads keys. A revision below the compaction point returns
	// ErrCompacted, one above Revision() returns ErrFutureRevision.
	Range(ctx context.Context, opts RangeOptions) (RangeResult, error)
	// Lease returns a lease, or ErrLeaseNotFound.
	Lease(ctx context.Context, id int64) (Lease, error)
	// Leases lists every lease.
	Leases(ctx context.Context) ([]Lease, error)
	// LeaseKeys lists the keys currently attached to a lease, in key order.
	LeaseKeys(ctx context.Context, id int64) ([][]byte, error)
}

// WriteTx is the view a write transaction runs in: its reads see every
// change made earlier in the same transaction.
type WriteTx interface {
	ReadTx
	// Apply records the events of one revision. rev must be exactly
	// Revision()+1 and every event must carry it as its KV.ModRevision; the
	// caller (the store's transaction evaluator) has already computed
	// CreateRevision, Version and PrevKV. Apply makes them visible to the
	// rest of this WriteTx at once and durable when Update returns.
	Apply(ctx context.Context, rev int64, events []Event) error
	// PutLease creates or replaces a lease (grant, keep-alive).
	PutLease(ctx context.Context, l Lease) error
	// DeleteLease removes a lease record; the caller deletes its keys
	// (through Apply) in the same transaction.
	DeleteLease(ctx context.Context, id int64) error
}

// Backend is a storage engine.
//
// Revisions: an empty engine is at revision 1, as etcd is (kube-apiserver
// treats resource version 0 as "unset"), so the first write gets revision 2.
//
// Writes: Update runs fn with exclusive write access (one writer at a time
// across every store instance sharing the engine). If fn returns nil the
// changes are durable when Update returns; if fn returns an error nothing is
// kept. Engines batch concurrent Updates into one durable commit where they
// can; fn must therefore not block on anything but the WriteTx. An engine
// may run fn more than once (the SQL engines dry-run a batch to prefetch the
// keys it reads, then run it for real), so fn must have no effect outside
// the WriteTx other than results it overwrites on every run.
//
// Reads: View runs fn on a consistent snapshot of committed state. It never
// sees a change that is not yet durable. An engine may run fn again on a
// newer snapshot (when a compaction overtook the first one), so fn, like an
// Update function, must only set results it overwrites on every run.
//
// Change feed: every committed revision reaches every Watch subscriber, in
// revision order, exactly once, whichever instance wrote it.
type Backend interface {
	Update(ctx context.Context, fn func(tx WriteTx) error) error
	View(ctx context.Context, fn func(tx ReadTx) error) error

	// Events returns committed events with fromRev <= revision <= toRev,
	// in revision order (ErrCompacted if fromRev is compacted away).
	Events(ctx context.Context, fromRev, toRev int64) ([]Event, error)
	// Watch calls fn with every batch of committed events whose revision
	// is above afterRev, in order, until ctx ends. fn must not block long;
	// a batch holds whole revisions. Watch returns when ctx ends, or with
	// an error if the feed broke (the caller must then re-subscribe from
	// the last revision it saw).
	Watch(ctx context.Context, afterRev int64, fn func([]Event)) error

	// Compact discards history below rev (keeping, for every key, its
	// newest version at or below rev unless that is a delete). It is
	// durable when it returns; space may be reclaimed later.
	Compact(ctx context.Context, rev int64) error

	// Status reports sizes for Maintenance.Status and metrics.
	Status(ctx context.Context) (Status, error)

	// Close releases the engine. Pending Updates fail with ErrClosed.
	Close() error
}

// Status describes an engine's state.
type Status struct {
	Revision        int64
	CompactRevision int64
	// DBSize is the bytes the engine occupies on disk; DBSizeInUse the
	// part holding live data (equal when unknown).
	DBSize, DBSizeInUse int64
	// Engine names the engine ("embedded", "postgres", "mysql").
	Engine string
}

package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// EngineName is what Status reports as Engine.
const EngineName = "embedded"

// DefaultSegmentSize is the size at which the log rolls to a new segment.
const DefaultSegmentSize = 64 << 20

// defaultMaxBatchBytes caps how many bytes one group commit collects before
// it writes; further queued Updates go to the next commit.
const defaultMaxBatchBytes = 8 << 20

// Options configures an Engine. The zero value is valid.
type Options struct {
	// SegmentSize is the size at which the log rolls to a new segment file
	// (DefaultSegmentSize if 0). A commit never spans segments, so a
	// segment can exceed it by one commit.
	SegmentSize int64
	// NoSync skips fdatasync. Only for tests: acknowledged writes can be
	// lost on a crash.
	NoSync bool
	// Logger receives recovery and failure messages (slog.Default if nil).
	Logger *slog.Logger
	// Clock returns the current time; used to time fsyncs (time.Now if nil).
	Clock func() time.Time
	// CheckpointBytes is how much log is written, at least, between two
	// index checkpoints (DefaultCheckpointBytes if 0; never less than four
	// times the last checkpoint's size). Negative turns checkpoints off:
	// none is written or read, and Open replays the whole log.
	CheckpointBytes int64
	// OnCommit, if set, is called by the committer after every durable
	// group commit (e.g. to feed Prometheus histograms). It must be fast.
	OnCommit func(CommitInfo)

	// inflight overrides maxInflight (tests and benchmarks only).
	inflight int
	// hook, if set, is called at reclamation's failure points; an error
	// stops maintenance there for good, as a crash would (tests only).
	hook func(point string) error
	// ckptHook, if set, is called at checkpoint writing's failure points;
	// an error abandons that checkpoint (tests only).
	ckptHook func(point string) error
	// reclaimRatio overrides defaultReclaimRatio (tests only).
	reclaimRatio float64
	// noReclaim turns reclamation off, leaving the compaction walk
	// (benchmarks only).
	noReclaim bool
}

// CommitInfo describes one group commit.
type CommitInfo struct {
	Updates int           // Update calls committed (successful functions)
	Failed  int           // Update calls in the batch whose function failed
	Bytes   int           // bytes written
	Sync    time.Duration // time spent in write + fdatasync
}

// Stats are cumulative counters for metrics.
type Stats struct {
	Commits       uint64        // group commits written (one write + one fsync each)
	Updates       uint64        // successful Update calls
	FailedUpdates uint64        // Update calls whose function returned an error
	BytesWritten  uint64        // log bytes written
	SyncTotal     time.Duration // total time in write + fdatasync
	SyncMax       time.Duration // slowest write + fdatasync
	Segments      int           // segment files
	Keys          int           // keys in the index (including ones only in history)
	Revision      int64
	CompactRev    int64
	// Checkpoints is the number of index checkpoints written since Open;
	// SinceCheckpoint the log bytes a restart after a crash would replay
	// (written since the last checkpoint, or not covered by the one Open
	// loaded).
	Checkpoints     uint64
	SinceCheckpoint int64
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.SegmentSize < 0 {
		return fmt.Errorf("segment size %d is negative", o.SegmentSize)
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
}

// revLoc says where a revision record's payload sits in the log.
type revLoc struct {
	seg uint32
	n   uint32
	off int64
}

// Engine is the embedded storage engine. It implements backend.Backend.
type Engine struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	// mu guards the index, the lease tables and the in-flight list. The
	// committer adds revisions above the committed one; the publisher makes
	// them visible; readers take the read lock.
	mu         sync.RWMutex
	tree       *ctree
	compactRev int64
	leases     map[int64]backend.Lease
	leaseKeys  map[int64]map[string]struct{}
	revLocs    []revLoc // revLocs[i] is revision revBase+i
	revBase    int64
	segs       map[uint32]*segment
	committed  atomic.Int64           // newest durable, visible revision
	pendLeases map[int64]pendingLease // lease changes not yet published
	inflight   []*batch               // built, not yet published, in order
	// recent lists, oldest first, the keys written at every revision above
	// recentFloor, built or published: rangeAt turns the tree's counts at
	// the head into counts at a reader's revision with them.
	recent      []recentKey
	recentFloor int64
	// pubPos is the end of the last published group commit in the log.
	pubPos ckptPos

	// Checkpoints: log bytes published since the last one (or, after
	// Open, not covered by the one loaded), and the last one's size.
	sinceCkpt    atomic.Int64
	lastCkptSize atomic.Int64
	ckptSeg      atomic.Uint32 // segment of the last checkpoint written or loaded
	ckpts        atomic.Uint64 // checkpoints written
	markFloor    atomic.Uint32 // floor of the newest published reclamation mark

	// Committer state: touched only by the committer goroutine.
	cur         *segment
	cb          *batch // the batch being built
	headRev     int64  // revision after the last built batch
	pendCompact int64  // newest compaction built
	seq         uint64

	pubCh chan *batch
	bufs  chan []byte

	// Request queue.
	qmu    sync.Mutex
	queue  []*request
	closed bool
	wake   chan struct{}

	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	isClosed  atomic.Bool
	failed    atomic.Pointer[error] // set when a write or sync failed

	feed feed

	// Maintenance goroutine (maint.go): incremental compaction and
	// segment reclamation.
	maintWake    chan struct{}
	maintBarrier chan chan struct{}
	maintDone    chan struct{}

	stats struct {
		sync.Mutex
		Stats
	}
	metrics *engineMetrics
}

var _ backend.Backend = (*Engine)(nil)

// Open opens (creating if needed) the engine in dir. It takes an exclusive
// lock on the directory, replays the log and starts the committer.
func Open(dir string, opts Options) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("opening embedded engine: %w", err)
	}
	opts.setDefaults()
	if dir == "" {
		return nil, errors.New("opening embedded engine: empty data dir")
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("opening embedded engine: data dir %q is not a directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening embedded engine: data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening embedded engine: creating data dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opening embedded engine: %w", err)
	}
	inflight := maxInflight
	if opts.inflight > 0 {
		inflight = opts.inflight
	}
	e := &Engine{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With("engine", EngineName, "dir", dir),
		lock:       lock,
		tree:       newTree(),
		leases:     map[int64]backend.Lease{},
		leaseKeys:  map[int64]map[string]struct{}{},
		pendLeases: map[int64]pendingLease{},
		revBase:    2, // revision 1 is the empty store, as in etcd
		pubCh:      make(chan *batch, inflight-1),
		bufs:       make(chan []byte, maxInflight+1),
		segs:       map[uint32]*segment{},
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),

		maintWake:    make(chan struct{}, 1),
		maintBarrier: make(chan chan struct{}),
		maintDone:    make(chan struct{}),
	}
	e.feed.init()
	e.metrics = newEngineMetrics(e)
	// An empty store is at revision 1, as etcd is: kube-apiserver treats
	// resource version 0 as "unset", so the first write gets revision 2.
	e.committed.Store(1)
	if err := e.replay(); err != nil {
		e.closeFiles()
		return nil, fmt.Errorf("opening embedded engine in %q: %w", dir, err)
	}
	e.headRev = e.committed.Load()
	e.recentFloor = e.headRev
	e.pubPos = ckptPos{seg: e.cur.id, off: e.cur.size}
	e.pendCompact = e.compactRev
	go e.run()
	go e.maintain()
	if e.compactRev > 0 || e.checkpointDue() {
		e.kickMaintenance() // finish a reclamation a crash interrupted; checkpoint a long replay
	}
	return e, nil
}

func (e *Engine) segPath(id uint32) string {
	return filepath.Join(e.dir, fmt.Sprintf("%016x.wal", id))
}

// createSegment creates and registers a new, empty segment file whose
// records follow revision startRev.
func (e *Engine) createSegment(id uint32, startRev int64) (*segment, error) {
	f, err := os.OpenFile(e.segPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating segment: %w", err)
	}
	if err := writeSegmentHeader(f, startRev, e.opts.NoSync); err != nil {
		f.Close()
		return nil, err
	}
	if !e.opts.NoSync {
		if err := syncDir(e.dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	s := &segment{id: id, f: f, size: int64(segmentHeaderLen), hdrLen: int64(segmentHeaderLen),
		startRev: startRev, lastRev: startRev}
	e.mu.Lock()
	e.segs[id] = s
	e.mu.Unlock()
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening data dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing data dir: %w", err)
	}
	return nil
}

// Close stops the committer (pending Updates fail with ErrClosed), ends
// every Watch and releases the files and the directory lock.
func (e *Engine) Close() error {
	first := false
	e.closeOnce.Do(func() {
		first = true
		e.qmu.Lock()
		e.closed = true
		e.qmu.Unlock()
		e.isClosed.Store(true)
		close(e.closing)
		<-e.done
		<-e.maintDone
		e.feed.close()
	})
	if !first {
		return backend.ErrClosed
	}
	// A clean shutdown leaves a checkpoint of everything, so that the next
	// Open replays nothing.
	if e.opts.CheckpointBytes >= 0 && e.sinceCkpt.Load() > 0 {
		if err := e.writeCheckpoint(); err != nil {
			e.log.Warn("writing index checkpoint at close failed; the next start replays the log", "err", err)
		}
	}
	return e.closeFiles()
}

func (e *Engine) closeFiles() error {
	var errs []error
	e.mu.Lock()
	for _, s := range e.segs {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	e.mu.Unlock()
	if e.lock != nil {
		if err := e.lock.Close(); err != nil { // closing drops the flock
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing embedded engine: %w", err)
	}
	return nil
}

// Status implements backend.Backend.
func (e *Engine) Status(ctx context.Context) (backend.Status, error) {
	if e.isClosed.Load() {
		return backend.Status{}, backend.ErrClosed
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	st := backend.Status{
		Revision:        e.committed.Load(),
		CompactRevision: e.compactRev,
		Engine:          EngineName,
	}
	for _, s := range e.segs {
		fi, err := s.f.Stat()
		if err != nil {
			return backend.Status{}, fmt.Errorf("status: %w", err)
		}
		st.DBSize += fi.Size()
		// A segment a compaction walk covered holds only its reachable
		// versions in use; the others count whole.
		if l := s.liveBytes.Load(); l > 0 {
			st.DBSizeInUse += min(l-1, fi.Size())
		} else {
			st.DBSizeInUse += fi.Size()
		}
	}
	return st, nil
}

// Stats returns cumulative counters for metrics.
func (e *Engine) Stats() Stats {
	e.stats.Lock()
	s := e.stats.Stats
	e.stats.Unlock()
	e.mu.RLock()
	s.Segments = len(e.segs)
	s.Keys = e.tree.Len()
	s.CompactRev = e.compactRev
	e.mu.RUnlock()
	s.Revision = e.committed.Load()
	s.Checkpoints = e.ckpts.Load()
	s.SinceCheckpoint = e.sinceCkpt.Load()
	return s
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns) }

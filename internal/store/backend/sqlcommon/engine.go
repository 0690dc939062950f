package sqlcommon

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/diag"
)

// Options tune an Engine.
type Options struct {
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxBatch caps the Update functions run in one database transaction
	// (default 256).
	MaxBatch int
	// CompactChunk is how many revisions one compaction delete covers
	// (default 1000).
	CompactChunk int64
	// FeedChunk caps the revisions one Watch batch reads (default 1000).
	FeedChunk int64
	// NoWriteCache disables the write path's cache of current versions
	// (every read of an Update function then goes to the database).
	NoWriteCache bool
	// NoProbe disables prefetching by probe runs: Update functions then
	// run once per attempt (see the package documentation).
	NoProbe bool
	// Overlap lets the committer request the next batch's lock while a
	// COMMIT is in flight (see the package documentation). Both dialects
	// set it. (It was off for a while: the MariaDB crash test lost
	// acknowledged puts with it; the cause was the MySQL change feed
	// taking revisions that were visible but not yet durable, from its
	// poll and from the read cache's barrier, which overlap only made
	// more likely. See FeedHooks.Observe and ObserveVisible.)
	Overlap bool
	// LocalFeed serves Watch the revisions this instance committed itself
	// from memory instead of kv_history (see localFeed). Both dialects set
	// it (the phantom events once seen with it had the same cause as
	// Overlap's losses).
	LocalFeed bool
}

// Engine implements backend.Backend on a Dialect.
type Engine struct {
	d    Dialect
	log  *slog.Logger
	opts Options

	reqs   chan *request
	stop   chan struct{} // closed by Close: committer drains and exits
	exited chan struct{} // closed when the committer has exited
	// gone is closed when Close returns, also when it gave up waiting for
	// a stuck committer: callers still waiting for it then get ErrClosed.
	gone   chan struct{}
	closed atomic.Bool
	once   sync.Once

	// dbCtx is used for statements of batches, never a caller's context
	// (a caller giving up must not break the batch it shares).
	dbCtx    context.Context
	dbCancel context.CancelFunc
	feedWG   sync.WaitGroup

	head headNotifier
	// committing is the revision of the batch whose COMMIT is in flight
	// (0 if none); see Committing.
	committing atomic.Int64
	// local holds the events of recent local batches for Watch.
	local localFeed
	// reads shares change feed reads between concurrent Watch calls.
	reads sharedReads
	// cache is the write path's cache of current versions (committer only).
	cache writeCache

	watchMu  sync.Mutex
	watchers int
	watchOn  chan struct{} // closed while watchers > 0
}

type request struct {
	ctx  context.Context
	fn   func(backend.WriteTx) error
	done chan error
}

// New migrates the schema and starts the engine. It takes ownership of d
// (Close closes it, also when New fails).
func New(ctx context.Context, d Dialect, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.CompactChunk <= 0 {
		opts.CompactChunk = 1000
	}
	if opts.FeedChunk <= 0 {
		opts.FeedChunk = 1000
	}
	e := &Engine{
		d:       d,
		log:     opts.Logger.With("engine", d.Name()),
		opts:    opts,
		reqs:    make(chan *request, 4096),
		stop:    make(chan struct{}),
		exited:  make(chan struct{}),
		gone:    make(chan struct{}),
		watchOn: make(chan struct{}),
	}
	e.head.init()
	if err := e.migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	rev, err := e.readRevision(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("reading revision: %w", err)
	}
	e.head.observe(rev)
	e.dbCtx, e.dbCancel = context.WithCancel(context.WithoutCancel(ctx))
	go e.committer()
	e.feedWG.Add(1)
	go func() {
		defer e.feedWG.Done()
		d.RunFeed(e.dbCtx, e)
	}()
	return e, nil
}

// Close stops the engine: queued Updates fail with backend.ErrClosed, a
// batch being committed finishes, Watch calls return.
//
// Close always returns within about 4*CloseWait: a committer that does not
// finish its batch in CloseWait has its database statements cancelled
// (the batch fails, or its outcome is unknown), and one that still does
// not stop (stuck outside the database) is abandoned, as are a change
// feed and a connection pool that do not close. Each of those is logged
// with a goroutine dump.
func (e *Engine) Close() error {
	e.once.Do(func() {
		defer close(e.gone)
		e.closed.Store(true)
		close(e.stop)
		if !e.waitFor(e.exited, "write committer to finish its batch") {
			e.dbCancel() // fails the batch's statements; the committer then exits
			if !e.waitFor(e.exited, "write committer after cancelling its statements") {
				e.log.Error("abandoning a stuck write committer; its callers get ErrClosed")
			}
		}
		e.dbCancel()
		e.head.close()
		feedDone := make(chan struct{})
		go func() {
			e.feedWG.Wait()
			close(feedDone)
		}()
		e.waitFor(feedDone, "change feed to stop")
		dbDone := make(chan struct{})
		go func() {
			e.d.Close() // a connection pool waits for connections in use
			close(dbDone)
		}()
		e.waitFor(dbDone, "database connections to close")
	})
	return nil
}

// CloseWait is how long Close waits for each step of shutting down. A
// batch normally commits in milliseconds; the store's own Close (which
// must end within its supervisor's 15s) leaves the engine about 7s.
var CloseWait = 3 * time.Second

// waitFor waits up to CloseWait for done; if it is not closed by then it
// logs what was awaited and a goroutine dump, and returns false.
func (e *Engine) waitFor(done <-chan struct{}, what string) bool {
	t := time.NewTimer(CloseWait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	path, err := diag.DumpGoroutines("", os.Stderr)
	e.log.Error("engine close: still waiting for "+what, "waited", CloseWait, "goroutine_dump", path, "dump_err", err)
	return false
}

// Update runs fn in a write transaction shared with concurrent callers.
func (e *Engine) Update(ctx context.Context, fn func(backend.WriteTx) error) error {
	if e.closed.Load() {
		return backend.ErrClosed
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case e.reqs <- r:
	case <-e.stop:
		return backend.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return e.unavailable(err)
	case <-e.exited:
		select {
		case err := <-r.done:
			return e.unavailable(err)
		default:
			return backend.ErrClosed
		}
	case <-e.gone:
		// Close gave up on a stuck committer.
		return backend.ErrClosed
	case <-ctx.Done():
		// The outcome is unknown: the batch may still commit.
		return ctx.Err()
	}
}

func (e *Engine) committer() {
	defer close(e.exited)
	var (
		next  *stage     // a batch whose lock is requested, functions not run
		carry []*request // requests of an overlapped batch that was abandoned
		prev  int
	)
	for {
		if next == nil {
			reqs, ok := e.gather(carry, prev)
			carry = nil
			if !ok {
				e.failQueued()
				return
			}
			next = e.prepare(reqs, e.cache.rev)
		}
		cur := next
		next = nil
		prev = len(cur.reqs)
		cs := e.execute(cur)
		if cs.sent && e.opts.Overlap {
			// While this batch's COMMIT is on its way, the next batch
			// already asks for the meta lock: the database hands it over
			// the moment COMMIT is done, without a round trip to us.
			if reqs := e.gatherDuring(cs.done, prev); len(reqs) > 0 {
				next = e.prepare(reqs, cs.tx.rev)
			}
		}
		results, err, inDoubt := e.complete(cs)
		if err != nil && !inDoubt && next != nil {
			// Retrying cur needs the meta lock that next is about to
			// take: give it back first, and run next's requests later.
			carry = e.abandon(next)
			next = nil
		}
		e.settle(cur.reqs, results, err, inDoubt)
	}
}

// gather takes the requests of the next batch: carry, then whatever is
// queued, waiting for the first one if there is none. ok is false when the
// engine is stopping and nothing is left to run.
func (e *Engine) gather(carry []*request, prev int) (batch []*request, ok bool) {
	batch = make([]*request, 0, e.opts.MaxBatch)
	batch = append(batch, carry...)
	if len(batch) == 0 {
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
		case <-e.stop:
			return nil, false
		}
	}
fill:
	for len(batch) < e.opts.MaxBatch {
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
		default:
			break fill
		}
	}
	// The callers of a large batch come back together just after it
	// commits; a batch started with the first few of them would leave the
	// rest to the next commit. When far fewer are queued than the last
	// batch held, wait a little for them.
	if want := min(prev/2, e.opts.MaxBatch); len(batch) < want && prev >= gatherMin {
		timer := time.NewTimer(gatherWindow)
	gather:
		for len(batch) < want {
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
			case <-timer.C:
				break gather
			case <-e.stop:
				break gather
			}
		}
		timer.Stop()
	}
	return batch, true
}

// gatherDuring takes the requests of a batch to overlap with the commit
// in flight (done is closed when it ends). It returns as soon as about
// half as many as the last batch held are queued, or gatherWindow after
// the first arrived; it returns nil if the commit ends before any did.
func (e *Engine) gatherDuring(done <-chan struct{}, prev int) []*request {
	var batch []*request
	want := max(min(prev/2, e.opts.MaxBatch), 1)
	var timeout <-chan time.Time
	for len(batch) < e.opts.MaxBatch {
		if len(batch) >= want {
			// Take what else is already queued, without waiting.
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
				continue
			default:
				return batch
			}
		}
		select {
		case r := <-e.reqs:
			if batch == nil {
				batch = make([]*request, 0, e.opts.MaxBatch)
				t := time.NewTimer(gatherWindow)
				defer t.Stop()
				timeout = t.C
			}
			batch = append(batch, r)
		case <-timeout:
			return batch
		case <-done:
			// The commit ended first: what was gathered still starts
			// the next batch (which then no longer overlaps).
			return batch
		case <-e.stop:
			return batch
		}
	}
	return batch
}

func (e *Engine) failQueued() {
	for {
		select {
		case r := <-e.reqs:
			r.done <- backend.ErrClosed
		default:
			return
		}
	}
}

// Gathering: a batch is held back up to gatherWindow for more requests
// when the previous one had at least gatherMin and far more than are
// queued.
const (
	gatherWindow = 500 * time.Microsecond
	gatherMin    = 8
)

// Savepoint statements used to make each function of a batch atomic.
var (
	stmtSavepoint  = Stmt{SQL: "SAVEPOINT fn"}
	stmtRelease    = Stmt{SQL: "RELEASE SAVEPOINT fn"}
	stmtRollbackTo = Stmt{SQL: "ROLLBACK TO SAVEPOINT fn"}
	stmtCommit     = Stmt{SQL: "COMMIT"}
	stmtRollback   = Stmt{SQL: "ROLLBACK"}
)

// batch is the state of one write transaction running several functions.
//
// Rows written by Apply are buffered (hist, curLog) and turned into
// multi-row statements only when something must reach the database: a
// read that the write cache cannot answer, or the commit. Statements that
// return nothing (leases) go to the connection's queue directly.
type batch struct {
	e     *Engine
	conn  Conn
	err   error       // first database error; the whole batch fails
	cache *writeCache // nil when disabled

	hist   []HistoryRow
	curLog []curOp
	// evs are the events of the functions that succeeded so far, as the
	// change feed reads them back (kept only when feed is set).
	feed    bool
	evs     []backend.Event
	evBytes int
	// touched holds the keys this batch wrote (also by functions that
	// failed): a write of any other key the write cache knows absent
	// creates a row of kv_current.
	touched map[string]struct{}

	// Bookkeeping for the function running now: mark, histMark and
	// logMark are where its statements and rows start; placed says its
	// savepoint was sent (its writes reached the database).
	inFn, placed, haveSP    bool
	mark, histMark, logMark int
	evMark, evBytesMark     int
}

// curOp is one change to kv_current, in order.
type curOp struct {
	key []byte
	kv  backend.KeyValue
	del bool
	// fresh: the key had no row in kv_current when the batch began and
	// this is the batch's first write of it.
	fresh bool
}

// applyStmts turns buffered rows into statements: history rows in order,
// and the final state of each key in kv_current. Statements are split so
// that none carries much more than maxStmtBytes of keys and values.
func (b *batch) applyStmts(hist []HistoryRow, log []curOp) []Stmt {
	if len(hist) == 0 && len(log) == 0 {
		return nil
	}
	final := make(map[string]int, len(log))
	var order []int
	var fresh []bool // per key: its first write here created its row
	for i, op := range log {
		if j, ok := final[string(op.key)]; ok {
			order[j] = i
			continue
		}
		final[string(op.key)] = len(order)
		order = append(order, i)
		fresh = append(fresh, op.fresh)
	}
	var dels [][]byte
	var puts, news []backend.KeyValue
	for j, i := range order {
		switch {
		case log[i].del:
			dels = append(dels, log[i].key)
		case fresh[j]:
			news = append(news, log[i].kv)
		default:
			puts = append(puts, log[i].kv)
		}
	}
	var out []Stmt
	for len(hist) > 0 || len(dels) > 0 || len(puts) > 0 || len(news) > 0 {
		var h []HistoryRow
		var d [][]byte
		var p, n []backend.KeyValue
		size := 0
		for len(hist) > 0 && (len(h) == 0 || size < maxStmtBytes) {
			size += len(hist[0].Key) + len(hist[0].Value)
			h, hist = append(h, hist[0]), hist[1:]
		}
		for len(dels) > 0 && size < maxStmtBytes {
			size += len(dels[0])
			d, dels = append(d, dels[0]), dels[1:]
		}
		for len(puts) > 0 && (size < maxStmtBytes || len(h)+len(d)+len(p) == 0) {
			size += len(puts[0].Key) + len(puts[0].Value)
			p, puts = append(p, puts[0]), puts[1:]
		}
		for len(news) > 0 && (size < maxStmtBytes || len(h)+len(d)+len(p)+len(n) == 0) {
			size += len(news[0].Key) + len(news[0].Value)
			n, news = append(n, news[0]), news[1:]
		}
		out = append(out, b.e.d.Apply(h, d, p, n)...)
	}
	return out
}

// maxStmtBytes bounds the keys and values one statement carries.
const maxStmtBytes = 4 << 20

// beforeSend is called before anything goes to the database: buffered rows
// become statements, and the running function's writes get a savepoint in
// front of them.
//
// Only writes need the savepoint: a function that reads and then writes
// (the usual shape) never sends its own writes before it returns, so it
// needs none, and if it fails its buffered writes are simply dropped.
func (b *batch) beforeSend() {
	if !b.inFn {
		b.queue(b.applyStmts(b.hist, b.curLog)...)
		b.hist, b.curLog = b.hist[:0], b.curLog[:0]
		return
	}
	prev := b.applyStmts(b.hist[:b.histMark], b.curLog[:b.logMark])
	b.conn.InsertAt(b.mark, prev...)
	b.mark += len(prev)
	own := b.applyStmts(b.hist[b.histMark:], b.curLog[b.logMark:])
	b.hist, b.curLog = b.hist[:0], b.curLog[:0]
	b.histMark, b.logMark = 0, 0
	if !b.placed && (b.conn.Pending() > b.mark || len(own) > 0) {
		if b.haveSP {
			b.conn.InsertAt(b.mark, stmtRelease, stmtSavepoint)
		} else {
			b.conn.InsertAt(b.mark, stmtSavepoint)
		}
		b.placed, b.haveSP = true, true
	}
	b.queue(own...)
}

func (b *batch) query(sql string, args ...any) (Rows, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.beforeSend()
	rows, err := b.conn.Query(b.e.dbCtx, sql, args...)
	// Everything queued was sent: the running function's statements now
	// start at the head of the (empty) queue.
	b.mark = 0
	if err != nil {
		b.err = err
		return nil, err
	}
	return rows, nil
}

// queryUnflushed sends a read without turning buffered rows into
// statements. Only reads of keys the write cache has no entry for may use
// it: every key written in this batch has an entry, so the buffered rows
// cannot change such a read's answer.
func (b *batch) queryUnflushed(sql string, args ...any) (Rows, error) {
	if b.inFn && b.conn.Pending() > b.mark {
		return b.query(sql, args...) // this function's lease statements need a savepoint
	}
	if b.err != nil {
		return nil, b.err
	}
	rows, err := b.conn.Query(b.e.dbCtx, sql, args...)
	b.mark = 0
	if err != nil {
		b.err = err
		return nil, err
	}
	return rows, nil
}

func (b *batch) queue(s ...Stmt) {
	for _, st := range s {
		b.conn.Queue(st)
	}
}

// settle reports a batch's outcome to its callers. A batch that failed
// before COMMIT was sent did not commit, so its functions are run again
// (the store's functions may be re-run): once as a batch, then one by one
// so that a function whose writes the database rejects fails alone. A
// failure at COMMIT leaves the outcome unknown and is reported.
func (e *Engine) settle(reqs []*request, results []error, err error, inDoubt bool) {
	for attempt := 1; err != nil && !inDoubt && !e.closed.Load() && attempt <= 2; attempt++ {
		e.log.Warn("write batch failed before commit; retrying", "functions", len(reqs), "err", err)
		// Back off a little: connections are often lost together.
		t := time.NewTimer(time.Duration(attempt*attempt) * 20 * time.Millisecond)
		select {
		case <-t.C:
		case <-e.stop:
			t.Stop()
		}
		results, err, inDoubt = e.tryBatch(reqs)
	}
	if err != nil && !inDoubt && len(reqs) > 1 && !e.closed.Load() {
		e.log.Warn("write batch failed again; committing its functions one by one", "functions", len(reqs), "err", err)
		for _, r := range reqs {
			res, err, _ := e.tryBatch([]*request{r})
			if err != nil {
				r.done <- fmt.Errorf("write transaction: %w", err)
			} else {
				r.done <- res[0]
			}
		}
		return
	}
	for i, r := range reqs {
		if err != nil {
			r.done <- fmt.Errorf("write transaction: %w", err)
		} else {
			r.done <- results[i]
		}
	}
}

// tryBatch runs one write transaction on its own (no overlap); results
// holds each function's outcome when err is nil. inDoubt says COMMIT was
// sent and failed.
func (e *Engine) tryBatch(reqs []*request) (results []error, err error, inDoubt bool) {
	return e.complete(e.execute(e.prepare(reqs, e.cache.rev)))
}

// A write transaction goes through three stages, so that the committer can
// overlap two batches without giving up order or durability:
//
//   - prepare (committer goroutine): probe the functions against the write
//     cache, then send BEGIN and the locking read of the meta row (with the
//     prefetch) from a goroutine of its own;
//   - execute (committer): wait for the lock, run the functions, send the
//     writes and COMMIT from a goroutine of its own;
//   - complete (committer): wait for COMMIT's answer and record it.
//
// The committer prepares batch N+1 while batch N's COMMIT is in flight:
// N+1's locking read waits in the database until N commits. N+1's
// functions only run, and its COMMIT is only sent, after N's COMMIT was
// answered, so revisions stay in order and nothing is acknowledged before
// it is durable. N+1's prefetch may have been read before N committed;
// see writeCache.fill for why that is safe.

// stage is a batch whose lock has been requested.
type stage struct {
	reqs  []*request
	start time.Time
	conn  Conn
	b     *batch
	keys  [][]byte
	err   error // acquiring the connection failed
	lock  chan lockResult
}

type lockResult struct {
	base, compact int64
	found         []backend.KeyValue
	err           error
}

// commitStage is a batch whose COMMIT may be in flight.
type commitStage struct {
	st      *stage
	tx      *writeTx
	base    int64
	results []error
	local   *localBatch   // its events in the local feed, if recorded
	sent    bool          // COMMIT was sent; done is closed when answered
	done    chan struct{} // closed when the COMMIT round trip ended
	err     error         // set before done is closed (or before sent)
	locked  time.Time
	ran     time.Time
	flushed time.Time
}

// prepare probes reqs (against the write cache, expected valid at rev)
// and sends the locking read. Only the committer goroutine calls it.
func (e *Engine) prepare(reqs []*request, rev int64) *stage {
	st := &stage{reqs: reqs, start: time.Now(), lock: make(chan lockResult, 1)}
	conn, err := e.d.Acquire(e.dbCtx)
	if err != nil {
		st.err = fmt.Errorf("acquiring connection: %w", err)
		return st
	}
	st.conn = conn
	st.b = &batch{e: e, conn: conn, touched: map[string]struct{}{}, feed: e.opts.LocalFeed}
	if !e.opts.NoWriteCache && !e.opts.NoProbe {
		st.keys = e.cache.probe(reqs, rev)
	}
	st.b.queue(e.d.BeginWrite()...)
	go func() {
		var r lockResult
		r.base, r.compact, r.found, r.err = st.b.lockAndPrefetch(st.keys)
		st.lock <- r
	}()
	return st
}

// abandon rolls back a prepared batch that will not run and returns its
// requests.
func (e *Engine) abandon(st *stage) []*request {
	if st.err != nil {
		return st.reqs
	}
	r := <-st.lock
	if r.err != nil {
		st.conn.Release(true)
		return st.reqs
	}
	st.conn.Truncate(0)
	st.conn.Queue(stmtRollback)
	st.conn.Release(st.conn.Flush(e.dbCtx) != nil)
	return st.reqs
}

// execute waits for st's lock, runs its functions and sends its writes
// with COMMIT. The result has sent set if COMMIT went out; otherwise err
// says why the batch failed (it did not commit).
func (e *Engine) execute(st *stage) *commitStage {
	cs := &commitStage{st: st, done: make(chan struct{})}
	if st.err != nil {
		cs.err = st.err
		return cs
	}
	conn, b := st.conn, st.b
	lr := <-st.lock
	if lr.err != nil {
		conn.Release(true)
		e.cache.reset(0)
		cs.err = fmt.Errorf("locking revision: %w", lr.err)
		return cs
	}
	base := lr.base
	cs.base, cs.locked = base, time.Now()
	if !e.opts.NoWriteCache {
		if e.cache.begin(base) {
			e.cache.fill(st.keys, lr.found)
		}
		b.cache = &e.cache
	}
	tx := &writeTx{readTx: readTx{run: b.query, d: e.d, rev: base, compact: lr.compact}, b: b}
	cs.tx = tx
	results := make([]error, len(st.reqs))
	cs.results = results
	for i, r := range st.reqs {
		if b.err != nil {
			break
		}
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		b.inFn, b.placed = true, false
		b.mark, b.histMark, b.logMark = conn.Pending(), len(b.hist), len(b.curLog)
		b.evMark, b.evBytesMark = len(b.evs), b.evBytes
		revBefore, compactBefore := tx.rev, tx.compact
		e.cache.undo = e.cache.undo[:0]
		ferr := callFn(r.fn, tx)
		b.inFn = false
		if b.err != nil {
			break
		}
		if ferr == nil {
			continue
		}
		results[i] = ferr
		tx.rev, tx.compact = revBefore, compactBefore
		e.cache.rollbackFn()
		// Drop what is still buffered or queued of this function; if some
		// of it was sent, roll back to its savepoint.
		conn.Truncate(b.mark)
		b.hist, b.curLog = b.hist[:b.histMark], b.curLog[:b.logMark]
		b.evs, b.evBytes = b.evs[:b.evMark], b.evBytesMark
		if b.placed {
			b.queue(stmtRollbackTo)
		}
	}
	cs.ran = time.Now()
	if b.err != nil {
		cs.err = b.err
		e.rollback(conn)
		return cs
	}
	b.beforeSend()
	if tx.rev != base {
		b.queue(Stmt{SQL: "UPDATE meta SET rev = ? WHERE id = 1", Args: []any{tx.rev}})
		b.queue(e.d.Committed(tx.rev)...)
	}
	// Writes and COMMIT in one round trip. If the server answered with an
	// error the transaction did not commit; if the connection broke the
	// outcome is unknown.
	cs.flushed = time.Now()
	b.queue(stmtCommit)
	cs.sent = true
	if b.feed && tx.rev != base {
		cs.local = e.local.begin(base, tx.rev, b.evs, b.evBytes)
	}
	if tx.rev != base {
		e.committing.Store(tx.rev)
	}
	go func() {
		cs.err = conn.Flush(e.dbCtx)
		close(cs.done)
	}()
	return cs
}

// rollback ends a failed batch's transaction and releases its connection.
func (e *Engine) rollback(conn Conn) {
	conn.Truncate(0)
	conn.Queue(stmtRollback)
	rerr := conn.Flush(e.dbCtx)
	conn.Release(rerr != nil)
	e.cache.reset(0)
}

// complete waits for cs's COMMIT and records the outcome.
func (e *Engine) complete(cs *commitStage) (results []error, err error, inDoubt bool) {
	if !cs.sent {
		return nil, cs.err, false
	}
	<-cs.done
	st, tx := cs.st, cs.tx
	// Observe before clearing committing, so that a poller asking Known
	// after Committing never misses a revision in between.
	defer e.committing.Store(0)
	if cs.err != nil {
		e.local.finish(cs.local, false)
		inDoubt = !e.d.ServerRejected(cs.err)
		e.rollback(st.conn)
		return nil, cs.err, inDoubt
	}
	st.conn.Release(false)
	e.cache.rev = tx.rev
	if tx.rev != cs.base {
		e.local.finish(cs.local, true)
		e.head.observe(tx.rev)
	}
	if d := time.Since(st.start); d > time.Second {
		e.log.Warn("slow write batch", "functions", len(st.reqs), "duration", d)
	} else if e.log.Enabled(e.dbCtx, slog.LevelDebug) {
		e.log.Debug("write batch", "functions", len(st.reqs), "revisions", tx.rev-cs.base,
			"locked", cs.locked.Sub(st.start), "ran", cs.ran.Sub(cs.locked), "committed", time.Since(cs.flushed))
	}
	return cs.results, nil, false
}

// callFn runs fn, turning a panic into an error so one bad function cannot
// take the committer down.
func callFn(fn func(backend.WriteTx) error, tx backend.WriteTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("update function panicked: %v", p)
		}
	}()
	return fn(tx)
}

type queryFunc func(sql string, args ...any) (Rows, error)

func readMeta(q queryFunc, forUpdate bool) (rev, compact int64, err error) {
	sql := "SELECT rev, compact_rev FROM meta WHERE id = 1"
	if forUpdate {
		sql += " FOR UPDATE"
	}
	rows, err := q(sql)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return 0, 0, err
		}
		return 0, 0, fmt.Errorf("meta row missing: %w", backend.ErrCorrupt)
	}
	if err := rows.Scan(&rev, &compact); err != nil {
		return 0, 0, err
	}
	return rev, compact, rows.Close()
}

// View runs fn on a snapshot.
func (e *Engine) View(ctx context.Context, fn func(backend.ReadTx) error) error {
	if e.closed.Load() {
		return backend.ErrClosed
	}
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return e.unavailable(fmt.Errorf("acquiring connection: %w", err))
	}
	var dbErr error
	q := func(sql string, args ...any) (Rows, error) {
		if dbErr != nil {
			return nil, dbErr
		}
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			dbErr = err
		}
		return rows, err
	}
	for _, s := range e.d.BeginRead() {
		conn.Queue(s)
	}
	rev, compact, err := readMeta(q, false)
	if err != nil {
		conn.Release(true)
		return e.unavailable(fmt.Errorf("reading revision: %w", err))
	}
	ferr := fn(&readTx{run: q, d: e.d, rev: rev, compact: compact})
	conn.Truncate(0)
	conn.Queue(stmtRollback)
	cerr := conn.Flush(ctx)
	conn.Release(cerr != nil || dbErr != nil)
	return e.unavailable(ferr)
}

// unavailable marks errors that mean the database could not be reached or
// dropped the session with backend.ErrUnavailable, so that the store
// answers them with gRPC Unavailable (which etcd clients retry for reads
// and watches) instead of a final error.
func (e *Engine) unavailable(err error) error {
	if err == nil || errors.Is(err, backend.ErrUnavailable) || !isUnavailable(err, e.d) {
		return err
	}
	return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
}

func isUnavailable(err error, d Dialect) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne):
		return true
	}
	return d.Unavailable(err)
}

// Status reports revisions and size.
func (e *Engine) Status(ctx context.Context) (backend.Status, error) {
	if e.closed.Load() {
		return backend.Status{}, backend.ErrClosed
	}
	var st backend.Status
	err := e.View(ctx, func(tx backend.ReadTx) error {
		st.Revision, st.CompactRevision = tx.Revision(), tx.CompactRevision()
		return nil
	})
	if err != nil {
		return st, err
	}
	size, err := e.d.DBSize(ctx)
	if err != nil {
		return st, fmt.Errorf("database size: %w", err)
	}
	st.DBSize, st.DBSizeInUse, st.Engine = size, size, e.d.Name()
	return st, nil
}

// readRevision reads the committed revision (at start-up).
func (e *Engine) readRevision(ctx context.Context) (int64, error) {
	conn, err := e.d.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	rows, err := conn.Query(ctx, "SELECT rev FROM meta WHERE id = 1")
	if err != nil {
		conn.Release(true)
		return 0, err
	}
	var rev int64
	if rows.Next() {
		err = rows.Scan(&rev)
	} else if err = rows.Err(); err == nil {
		err = fmt.Errorf("meta row missing: %w", backend.ErrCorrupt)
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	conn.Release(err != nil)
	return rev, err
}

// Observe records a revision committed elsewhere (FeedHooks).
func (e *Engine) Observe(rev int64) { e.head.observe(rev) }

// ObserveVisible is told of a revision some other session saw committed
// (the read cache's barrier). Where a visible commit may not be durable
// yet (Dialect.VisibleDurable false: InnoDB) it is ignored, since a
// watcher handed a revision that a crash then loses would take the writes
// reusing its number for ones it already has; the change feed reports it
// once it is durable.
func (e *Engine) ObserveVisible(rev int64) {
	if e.d.VisibleDurable() {
		e.head.observe(rev)
	}
}

// Known implements FeedHooks.
func (e *Engine) Known(rev int64) bool {
	head, _, _ := e.head.get()
	return rev <= head
}

// Committing implements FeedHooks.
func (e *Engine) Committing(rev int64) bool { return rev <= e.committing.Load() }

// WatchersActive implements FeedHooks.
func (e *Engine) WatchersActive() (bool, <-chan struct{}) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	return e.watchers > 0, e.watchOn
}

func (e *Engine) addWatcher(delta int) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	e.watchers += delta
	switch {
	case e.watchers == 1 && delta > 0:
		close(e.watchOn)
	case e.watchers == 0:
		e.watchOn = make(chan struct{})
	}
}

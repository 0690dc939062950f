package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// DefaultMaxBytes is the default memory budget of a Cache.
const DefaultMaxBytes = 256 << 20

// loadPage is how many keys one Range of the initial load reads.
const loadPage = 10000

// errTooBig: keys and metadata alone exceed the budget.
var errTooBig = errors.New("keys and metadata exceed the cache's memory budget")

// Options configure a Cache.
type Options struct {
	// MaxBytes bounds the memory the cache accounts for: keys, metadata,
	// recent history (at most a quarter) and values. 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// Meta reads the engine's committed and compaction revisions for the
	// read barrier; nil uses an engine View. The cache closes it.
	Meta MetaSource
	// Redis is the optional shared value tier. The cache closes it.
	Redis *Redis
	// Logger receives the cache's logs; nil means slog.Default().
	Logger *slog.Logger
	// KeepBackendOpen makes Close leave the wrapped engine open.
	KeepBackendOpen bool
}

// Stats are the cache's counters, for metrics.
type Stats struct {
	// Hits counts Ranges answered without reading the engine (beyond the
	// read barrier); Misses those answered by the engine, by reason.
	Hits                                            int64
	MissBehind, MissHistory, MissValues, MissOff    int64
	RedisHits, RedisMisses                          int64
	Evictions                                       int64
	Keys, Bytes, ValueBytes, HistoryBytes, MaxBytes int64
	Revision                                        int64
	Enabled                                         bool
}

// Misses is the total of the miss counters.
func (s Stats) Misses() int64 { return s.MissBehind + s.MissHistory + s.MissValues + s.MissOff }

// Cache is a backend.Backend that answers reads from memory when it can
// prove them current and passes everything else to the engine it wraps.
type Cache struct {
	be    backend.Backend
	opts  Options
	log   *slog.Logger
	meta  MetaSource
	bar   *barrier // nil: meta is called directly (in-process engine)
	redis *Redis
	// observer, if the engine has it, is told of revisions the barrier
	// saw, so that its change feed fetches them at once. The barrier's
	// revision is merely visible, which on some databases is not yet
	// durable: the engine decides whether it may use it.
	observer interface{ ObserveVisible(int64) }

	mu sync.RWMutex
	ix *index // nil while off or reloading
	// appliedCh is closed and replaced whenever the feed applies a batch.
	appliedCh chan struct{}

	compact atomic.Int64 // newest compaction revision seen
	off     atomic.Bool  // turned off for good (over budget)

	feedCtx    context.Context
	feedCancel context.CancelFunc
	wg         sync.WaitGroup
	closed     atomic.Bool
	closeOnce  sync.Once
	closeErr   error

	hits, missBehind, missHistory, missValues, missOff atomic.Int64
	redisHits, redisMisses                             atomic.Int64
}

// New loads the engine's current state into memory and starts following
// its change feed. On error be is left open and opts.Meta and opts.Redis
// are closed.
func New(ctx context.Context, be backend.Backend, opts Options) (*Cache, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cache{be: be, opts: opts, log: opts.Logger.With("component", "store-cache"), redis: opts.Redis, appliedCh: make(chan struct{})}
	c.meta = opts.Meta
	if c.meta == nil {
		c.meta = viewMeta{be: be}
	} else {
		c.bar = &barrier{src: c.meta, timeout: barrierTimeout}
	}
	if o, ok := be.(interface{ ObserveVisible(int64) }); ok {
		c.observer = o
	}
	ix, err := c.load(ctx)
	switch {
	case errors.Is(err, errTooBig):
		c.turnOff(err)
	case err != nil:
		c.closeTiers()
		return nil, fmt.Errorf("loading read cache: %w", err)
	}
	c.ix = ix
	c.feedCtx, c.feedCancel = context.WithCancel(context.WithoutCancel(ctx))
	if ix != nil {
		c.log.Info("read cache loaded", "revision", ix.applied, "keys", ix.tree.Len(), "bytes", ix.total(), "max_bytes", opts.MaxBytes, "redis", c.redis != nil)
		c.wg.Add(1)
		go c.follow()
	}
	return c, nil
}

// load reads the engine's state at one snapshot.
func (c *Cache) load(ctx context.Context) (*index, error) {
	var ix *index
	err := c.be.View(ctx, func(tx backend.ReadTx) error {
		ix = newIndex(tx.Revision(), c.opts.MaxBytes)
		if c.redis != nil {
			ix.onEvict = c.redis.put
		}
		c.noteCompact(tx.CompactRevision())
		from := []byte{0}
		for {
			res, err := tx.Range(ctx, backend.RangeOptions{Key: from, End: []byte{0}, Limit: loadPage})
			if err != nil {
				return err
			}
			for _, kv := range res.KVs {
				ix.put(kv)
			}
			ix.evict()
			if ix.overBudget() {
				return errTooBig
			}
			if !res.More || len(res.KVs) == 0 {
				return nil
			}
			from = append(bytes.Clone(res.KVs[len(res.KVs)-1].Key), 0)
		}
	})
	if err != nil {
		return nil, err
	}
	ix.hist = nil
	return ix, nil
}

// follow applies the change feed until the cache closes or turns off.
func (c *Cache) follow() {
	defer c.wg.Done()
	backoff := 10 * time.Millisecond
	for {
		c.mu.RLock()
		ix := c.ix
		c.mu.RUnlock()
		if ix == nil {
			return
		}
		c.mu.RLock()
		after := ix.applied
		c.mu.RUnlock()
		err := c.be.Watch(c.feedCtx, after, func(evs []backend.Event) { c.applyBatch(ix, evs) })
		switch {
		case c.feedCtx.Err() != nil || errors.Is(err, backend.ErrClosed):
			return
		case errors.Is(err, backend.ErrCompacted):
			// Fell behind compaction: the feed cannot resume; reload.
			c.log.Warn("read cache fell behind compaction; reloading", "revision", after)
			c.setIndex(ix, nil)
			nix, lerr := c.load(c.feedCtx)
			if errors.Is(lerr, errTooBig) {
				c.turnOff(lerr)
				return
			}
			if lerr == nil {
				c.setIndex(nil, nix)
				backoff = 10 * time.Millisecond
				continue
			}
			err = lerr
			c.setIndex(nil, ix) // keep following from where it was; the next Watch fails again
		}
		c.log.Warn("read cache change feed stopped; resubscribing", "after", after, "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.feedCtx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// setIndex replaces old by nix if old is still current.
func (c *Cache) setIndex(old, nix *index) {
	c.mu.Lock()
	if c.ix == old {
		c.ix = nix
	}
	c.mu.Unlock()
}

func (c *Cache) applyBatch(ix *index, evs []backend.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ix != ix {
		return
	}
	ix.apply(evs)
	close(c.appliedCh)
	c.appliedCh = make(chan struct{})
	if ix.overBudget() {
		c.ix = nil
		go c.turnOff(errTooBig)
	}
}

// turnOff stops caching for good: every read then goes to the engine.
func (c *Cache) turnOff(reason error) {
	if c.off.Swap(true) {
		return
	}
	c.mu.Lock()
	c.ix = nil
	c.mu.Unlock()
	if c.feedCancel != nil {
		c.feedCancel()
	}
	c.log.Warn("read cache turned off; every read goes to the engine (raise the cache's max bytes)", "reason", reason, "max_bytes", c.opts.MaxBytes)
}

func (c *Cache) noteCompact(rev int64) {
	for {
		cur := c.compact.Load()
		if rev <= cur || c.compact.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// revisions runs the read barrier.
func (c *Cache) revisions(ctx context.Context) (rev, compact int64, err error) {
	if c.bar != nil {
		return c.bar.wait(ctx)
	}
	return c.meta.Meta(ctx)
}

// View runs fn on the cache when its applied revision is at least the
// engine's committed revision (read after fn was called), else on the
// engine.
func (c *Cache) View(ctx context.Context, fn func(backend.ReadTx) error) error {
	if c.closed.Load() {
		return backend.ErrClosed
	}
	c.mu.RLock()
	ix := c.ix
	c.mu.RUnlock()
	if ix == nil {
		c.missOff.Add(1)
		return c.be.View(ctx, fn)
	}
	rev, compact, err := c.revisions(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		c.missOff.Add(1)
		c.log.Debug("read barrier failed; reading from the engine", "err", err)
		return c.be.View(ctx, fn)
	}
	c.noteCompact(compact)
	c.mu.RLock()
	current := c.ix == ix
	applied := ix.applied
	c.mu.RUnlock()
	if !current || applied < rev {
		c.missBehind.Add(1)
		if current && c.observer != nil {
			c.observer.ObserveVisible(rev)
		}
		return c.be.View(ctx, fn)
	}
	return fn(&readTx{c: c, ix: ix, rev: applied, compact: compact})
}

// readTx is a view of the cache at revision rev.
type readTx struct {
	c            *Cache
	ix           *index
	rev, compact int64
}

func (t *readTx) Revision() int64        { return t.rev }
func (t *readTx) CompactRevision() int64 { return t.compact }

func (t *readTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	if err := ctx.Err(); err != nil {
		return backend.RangeResult{}, err
	}
	r := opts.Revision
	switch {
	case r > t.rev:
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (current %d): %w", r, t.rev, backend.ErrFutureRevision)
	case r > 0 && r < t.compact:
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (compacted to %d): %w", r, t.compact, backend.ErrCompacted)
	case r <= 0:
		r = t.rev
	}
	if opts.End != nil && !isFromKey(opts.End) && bytes.Compare(opts.Key, opts.End) >= 0 {
		return backend.RangeResult{Revision: r}, nil
	}
	c := t.c
	var (
		res   backend.RangeResult
		needs []need
		ok    bool
	)
	c.mu.RLock()
	if c.ix == t.ix {
		res, needs, ok = t.ix.rangeAt(opts, r)
	}
	c.mu.RUnlock()
	if !ok {
		c.missHistory.Add(1)
		return c.fallback(ctx, opts, r)
	}
	if len(needs) > 0 && !c.fillValues(ctx, t.ix, res, needs) {
		c.missValues.Add(1)
		return c.fallback(ctx, opts, r)
	}
	c.hits.Add(1)
	return res, nil
}

// fillValues completes res from the Redis tier; it reports whether every
// value was found.
func (c *Cache) fillValues(ctx context.Context, ix *index, res backend.RangeResult, needs []need) bool {
	if c.redis == nil {
		return false
	}
	vals, err := c.redis.get(ctx, needs)
	if err != nil {
		c.log.Debug("redis lookup failed", "err", err)
		c.redisMisses.Add(int64(len(needs)))
		return false
	}
	found := 0
	for i, v := range vals {
		if v != nil {
			res.KVs[needs[i].i].Value = v
			found++
		}
	}
	c.redisHits.Add(int64(found))
	c.redisMisses.Add(int64(len(needs) - found))
	c.mu.Lock()
	if c.ix == ix {
		for i, v := range vals {
			if v != nil {
				ix.setValue(needs[i].key, needs[i].mod, v)
			}
		}
		ix.evict()
	}
	c.mu.Unlock()
	return found == len(needs)
}

// fallback reads opts from the engine at revision r and keeps the values
// it returns.
func (c *Cache) fallback(ctx context.Context, opts backend.RangeOptions, r int64) (backend.RangeResult, error) {
	o := opts
	o.Revision = r
	var res backend.RangeResult
	err := c.be.View(ctx, func(tx backend.ReadTx) error {
		var err error
		res, err = tx.Range(ctx, o)
		return err
	})
	if err != nil || opts.KeysOnly || opts.CountOnly || len(res.KVs) == 0 {
		return res, err
	}
	c.mu.Lock()
	if ix := c.ix; ix != nil {
		for _, kv := range res.KVs {
			ix.setValue(kv.Key, kv.ModRevision, kv.Value)
		}
		ix.evict()
	}
	c.mu.Unlock()
	return res, nil
}

// Leases are not cached: each call is its own engine View.

func (t *readTx) Lease(ctx context.Context, id int64) (l backend.Lease, err error) {
	err = t.c.be.View(ctx, func(tx backend.ReadTx) error {
		l, err = tx.Lease(ctx, id)
		return err
	})
	return l, err
}

func (t *readTx) Leases(ctx context.Context) (ls []backend.Lease, err error) {
	err = t.c.be.View(ctx, func(tx backend.ReadTx) error {
		ls, err = tx.Leases(ctx)
		return err
	})
	return ls, err
}

func (t *readTx) LeaseKeys(ctx context.Context, id int64) (keys [][]byte, err error) {
	err = t.c.be.View(ctx, func(tx backend.ReadTx) error {
		keys, err = tx.LeaseKeys(ctx, id)
		return err
	})
	return keys, err
}

// Update goes to the engine.
func (c *Cache) Update(ctx context.Context, fn func(backend.WriteTx) error) error {
	if c.closed.Load() {
		return backend.ErrClosed
	}
	return c.be.Update(ctx, fn)
}

// Events goes to the engine.
func (c *Cache) Events(ctx context.Context, fromRev, toRev int64) ([]backend.Event, error) {
	if c.closed.Load() {
		return nil, backend.ErrClosed
	}
	return c.be.Events(ctx, fromRev, toRev)
}

// Watch goes to the engine.
func (c *Cache) Watch(ctx context.Context, afterRev int64, fn func([]backend.Event)) error {
	if c.closed.Load() {
		return backend.ErrClosed
	}
	return c.be.Watch(ctx, afterRev, fn)
}

// Compact goes to the engine.
func (c *Cache) Compact(ctx context.Context, rev int64) error {
	if c.closed.Load() {
		return backend.ErrClosed
	}
	if err := c.be.Compact(ctx, rev); err != nil {
		return err
	}
	c.noteCompact(rev)
	return nil
}

// Status goes to the engine.
func (c *Cache) Status(ctx context.Context) (backend.Status, error) {
	if c.closed.Load() {
		return backend.Status{}, backend.ErrClosed
	}
	return c.be.Status(ctx)
}

// Close stops the cache and, unless Options.KeepBackendOpen, the engine.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.feedCancel()
		c.wg.Wait()
		if !c.opts.KeepBackendOpen {
			c.closeErr = c.be.Close()
		}
		c.closeTiers()
		c.mu.Lock()
		c.ix = nil
		c.mu.Unlock()
	})
	return c.closeErr
}

func (c *Cache) closeTiers() {
	if err := c.meta.Close(); err != nil {
		c.log.Debug("closing read barrier source", "err", err)
	}
	if c.redis != nil {
		if err := c.redis.Close(); err != nil {
			c.log.Debug("closing redis", "err", err)
		}
	}
}

// Stats returns the cache's counters and sizes.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits: c.hits.Load(), MissBehind: c.missBehind.Load(), MissHistory: c.missHistory.Load(),
		MissValues: c.missValues.Load(), MissOff: c.missOff.Load(),
		RedisHits: c.redisHits.Load(), RedisMisses: c.redisMisses.Load(), MaxBytes: c.opts.MaxBytes,
	}
	c.mu.RLock()
	if ix := c.ix; ix != nil {
		s.Enabled = true
		s.Keys = int64(ix.tree.Len())
		s.Bytes, s.ValueBytes, s.HistoryBytes = ix.total(), ix.valueBytes, ix.histBytes
		s.Revision = ix.applied
		s.Evictions = ix.evicted
	}
	c.mu.RUnlock()
	return s
}

// WaitApplied waits until the cache has applied revision rev (or ctx
// ends, or the cache is off).
func (c *Cache) WaitApplied(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		ix, ch := c.ix, c.appliedCh
		done := ix != nil && ix.applied >= rev
		c.mu.RUnlock()
		if done {
			return nil
		}
		if ix == nil {
			return errors.New("read cache is off")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Backend returns the engine the cache wraps.
func (c *Cache) Backend() backend.Backend { return c.be }

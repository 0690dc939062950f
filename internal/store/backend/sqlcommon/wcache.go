package sqlcommon

import (
	"context"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// writeCache holds the current version (or known absence) of keys the
// write path read or wrote, so that the single-key reads an Update
// function makes (the store reads every key it is about to write) cost no
// round trip. Only the committer goroutine uses it.
//
// It is valid at revision rev: a batch that locks the meta row and finds
// another revision (another instance wrote) clears it first. Lease
// changes and compaction never touch kv_current, so they cannot stale it.
type writeCache struct {
	rev   int64
	m     map[string]cacheEntry
	bytes int
	// undo restores the entries the running function changed, if it fails.
	undo []undoEntry
}

type cacheEntry struct {
	kv     backend.KeyValue
	exists bool
}

type undoEntry struct {
	key string
	old cacheEntry
	had bool
}

// Bounds of the write cache; past them it is cleared.
const (
	cacheMaxEntries = 1 << 18
	cacheMaxBytes   = 64 << 20
)

func (c *writeCache) reset(rev int64) {
	c.rev = rev
	c.m = make(map[string]cacheEntry)
	c.bytes = 0
	c.undo = c.undo[:0]
}

// begin starts a batch at revision base; it reports whether the cache was
// still valid (else it is now empty).
func (c *writeCache) begin(base int64) bool {
	if c.m == nil || c.rev != base || len(c.m) > cacheMaxEntries || c.bytes > cacheMaxBytes {
		c.reset(base)
		return false
	}
	return true
}

func (c *writeCache) set(key []byte, e cacheEntry, logUndo bool) {
	k := string(key)
	if logUndo {
		old, had := c.m[k]
		c.undo = append(c.undo, undoEntry{key: k, old: old, had: had})
	}
	if old, ok := c.m[k]; ok {
		c.bytes -= len(k) + len(old.kv.Value)
	}
	c.m[k] = e
	c.bytes += len(k) + len(e.kv.Value)
}

// rollbackFn undoes the running function's changes.
func (c *writeCache) rollbackFn() {
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		if old, ok := c.m[u.key]; ok {
			c.bytes -= len(u.key) + len(old.kv.Value)
		}
		if u.had {
			c.m[u.key] = u.old
			c.bytes += len(u.key) + len(u.old.kv.Value)
		} else {
			delete(c.m, u.key)
		}
	}
	c.undo = c.undo[:0]
}

// Range serves single-key reads at the current revision from the write
// cache, and fills it from the database on a miss.
func (t *writeTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	c := t.b.cache
	if opts.End != nil || (opts.Revision != 0 && opts.Revision != t.rev) || c == nil {
		return t.readTx.Range(ctx, opts)
	}
	if err := ctx.Err(); err != nil {
		return backend.RangeResult{}, err
	}
	e, ok := c.m[string(opts.Key)]
	if !ok {
		// Nothing in this batch wrote the key (it would have an entry),
		// so the database answers without the buffered rows.
		rt := t.readTx
		rt.run = t.b.queryUnflushed
		res, err := rt.Range(ctx, backend.RangeOptions{Key: opts.Key})
		if err != nil {
			return res, err
		}
		e = cacheEntry{exists: len(res.KVs) == 1}
		if e.exists {
			e.kv = res.KVs[0]
		}
		c.set(opts.Key, e, false)
	}
	res := backend.RangeResult{Revision: t.rev}
	if !e.exists {
		return res, nil
	}
	res.Count = 1
	if opts.CountOnly {
		return res, nil
	}
	kv := e.kv
	if opts.KeysOnly {
		kv.Value = nil
	}
	res.KVs = []backend.KeyValue{kv}
	return res, nil
}

// cacheApply records a revision's events in the write cache.
func (t *writeTx) cacheApply(puts []backend.KeyValue, dels [][]byte) {
	c := t.b.cache
	if c == nil {
		return
	}
	for _, kv := range puts {
		kv.Key = append([]byte(nil), kv.Key...)
		kv.Value = append([]byte{}, kv.Value...)
		c.set(kv.Key, cacheEntry{kv: kv, exists: true}, true)
	}
	for _, k := range dels {
		c.set(k, cacheEntry{}, true)
	}
}

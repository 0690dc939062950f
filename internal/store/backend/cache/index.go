package cache

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// entry is the current version of one key. Everything but value,
// resident and ref is immutable once the entry is in the tree; a new
// version replaces the entry.
type entry struct {
	key                         []byte
	create, mod, version, lease int64
	vlen                        int
	vhash                       uint64

	value    []byte // valid while resident (under the index lock)
	resident bool
	gone     bool        // replaced or deleted
	ref      atomic.Bool // read since the clock hand last passed
}

func (e *entry) meta() backend.KeyValue {
	return backend.KeyValue{Key: e.key, CreateRevision: e.create, ModRevision: e.mod, Version: e.version, Lease: e.lease}
}

// Memory accounting: bytes charged per key besides the key itself (tree
// slot, entry struct, slice headers, its slot in index.keys), and per
// history event besides its keys and values.
const (
	entryOverhead = 152
	eventOverhead = 160
)

var hashSeed = maphash.MakeSeed()

func hashValue(v []byte) uint64 { return maphash.Bytes(hashSeed, v) }

// index is the mirror of the engine's state at revision applied plus the
// recent history. Callers hold the cache's lock.
type index struct {
	tree *btree.BTreeG[*entry]

	metaBytes, valueBytes, histBytes int64
	maxBytes, histMax                int64

	// clock holds resident entries in the order they became resident;
	// evict sweeps it.
	clock []*entry

	// hist holds every event with revision > floor, oldest first.
	hist  []backend.Event
	floor int64

	applied int64
	// keys is every entry of the tree in key order, for counting a range
	// by binary search instead of a walk (see rank); nil when a key was
	// added or removed since it was built. Readers build it under the
	// cache's read lock (several may race to, which is harmless); writers,
	// holding the write lock, drop it and reset walked.
	keys atomic.Pointer[[]*entry]
	// walked counts the keys that counted reads walked since keys was
	// dropped. keys is rebuilt only once they reach the tree's size, so
	// that rebuilding (a pass over every key) never costs more than the
	// walks it replaces, e.g. small ranges in a large tree while keys
	// come and go.
	walked atomic.Int64
	// onEvict receives values as they are evicted (the Redis tier).
	onEvict func(key []byte, mod int64, value []byte)
	evicted int64
}

func newIndex(rev, maxBytes int64) *index {
	return &index{
		tree:     btree.NewG(32, func(a, b *entry) bool { return bytes.Compare(a.key, b.key) < 0 }),
		maxBytes: maxBytes,
		histMax:  maxBytes / 4,
		floor:    rev,
		applied:  rev,
	}
}

func (ix *index) total() int64 { return ix.metaBytes + ix.valueBytes + ix.histBytes }

// overBudget reports that keys, metadata and history alone exceed the
// budget: evicting values cannot help.
func (ix *index) overBudget() bool { return ix.metaBytes+ix.histBytes > ix.maxBytes }

// put installs kv as its key's current version, value resident.
func (ix *index) put(kv backend.KeyValue) {
	e := &entry{
		key: kv.Key, create: kv.CreateRevision, mod: kv.ModRevision, version: kv.Version, lease: kv.Lease,
		vlen: len(kv.Value), vhash: hashValue(kv.Value), value: kv.Value, resident: true,
	}
	if old, ok := ix.tree.ReplaceOrInsert(e); ok {
		ix.drop(old)
	} else {
		ix.dropKeys()
	}
	ix.metaBytes += int64(len(e.key)) + entryOverhead
	ix.valueBytes += int64(e.vlen)
	ix.clock = append(ix.clock, e)
}

func (ix *index) del(key []byte) {
	if old, ok := ix.tree.Delete(&entry{key: key}); ok {
		ix.drop(old)
		ix.dropKeys()
	}
}

// dropKeys invalidates the sorted key list after a key was added or
// removed.
func (ix *index) dropKeys() {
	ix.keys.Store(nil)
	ix.walked.Store(0)
}

// sortedKeys returns the tree's entries in key order, or nil if a key was
// added or removed since the list was built. Only the keys of its entries
// may be used: an entry replaced by a newer version of its key stays in
// the list (same key, dropped value) until the next rebuild.
func (ix *index) sortedKeys() []*entry {
	if p := ix.keys.Load(); p != nil {
		return *p
	}
	return nil
}

// noteWalk records that a counted read walked n keys, and rebuilds the
// sorted key list once the walks since it was dropped add up to the
// tree's size. Callers hold the cache's lock, for reading at least.
func (ix *index) noteWalk(n int) {
	if ix.walked.Add(int64(n)) < int64(ix.tree.Len()) || ix.keys.Load() != nil {
		return
	}
	ks := make([]*entry, 0, ix.tree.Len())
	ix.tree.Ascend(func(e *entry) bool {
		ks = append(ks, e)
		return true
	})
	ix.keys.Store(&ks)
}

// rank returns the number of keys below key.
func rank(ks []*entry, key []byte) int {
	return sort.Search(len(ks), func(i int) bool { return bytes.Compare(ks[i].key, key) >= 0 })
}

// countRange returns the number of keys opts selects (a range, not a
// single key) from the sorted key list ks: two binary searches.
func countRange(ks []*entry, opts backend.RangeOptions) int {
	n := len(ks)
	if !isFromKey(opts.End) {
		n = rank(ks, opts.End)
	}
	return max(0, n-rank(ks, opts.Key))
}

func (ix *index) drop(e *entry) {
	e.gone = true
	ix.metaBytes -= int64(len(e.key)) + entryOverhead
	if e.resident {
		e.resident, e.value = false, nil
		ix.valueBytes -= int64(e.vlen)
	}
}

// setValue makes the value of key at mod resident if the current entry
// is that version and the value matches what the feed recorded.
func (ix *index) setValue(key []byte, mod int64, v []byte) bool {
	e, ok := ix.tree.Get(&entry{key: key})
	if !ok || e.mod != mod || e.resident || len(v) != e.vlen || hashValue(v) != e.vhash {
		return false
	}
	e.value, e.resident = v, true
	ix.valueBytes += int64(e.vlen)
	ix.clock = append(ix.clock, e)
	return true
}

// apply records a batch of committed events (whole revisions, in order,
// all above applied).
func (ix *index) apply(evs []backend.Event) {
	cur := int64(-1) // the revision being applied
	for _, ev := range evs {
		kv := ev.KV
		if kv.ModRevision <= ix.applied && kv.ModRevision != cur {
			continue // already applied (re-delivered after a feed restart)
		}
		cur = kv.ModRevision
		switch ev.Type {
		case backend.EventPut:
			ix.put(kv)
		case backend.EventDelete:
			ix.del(kv.Key)
		}
		ix.hist = append(ix.hist, ev)
		ix.histBytes += eventBytes(ev)
		ix.applied = kv.ModRevision
	}
	ix.trimHistory()
	ix.evict()
}

func eventBytes(ev backend.Event) int64 {
	n := int64(len(ev.KV.Key)+len(ev.KV.Value)) + eventOverhead
	if ev.PrevKV != nil {
		n += int64(len(ev.PrevKV.Key) + len(ev.PrevKV.Value))
	}
	return n
}

// trimHistory drops the oldest revisions while history exceeds its share
// of the budget (always keeping the newest revision).
func (ix *index) trimHistory() {
	i := 0
	for ix.histBytes > ix.histMax && i < len(ix.hist) {
		rev := ix.hist[i].KV.ModRevision
		if rev == ix.applied {
			break
		}
		for i < len(ix.hist) && ix.hist[i].KV.ModRevision == rev {
			ix.histBytes -= eventBytes(ix.hist[i])
			i++
		}
		ix.floor = rev
	}
	if i > 0 {
		n := copy(ix.hist, ix.hist[i:])
		clear(ix.hist[n:])
		ix.hist = ix.hist[:n]
	}
}

// evict drops values, CLOCK order, until the index fits its budget.
func (ix *index) evict() {
	swept := 0
	for ix.total() > ix.maxBytes && len(ix.clock) > 0 {
		e := ix.clock[0]
		ix.clock[0] = nil
		ix.clock = ix.clock[1:]
		if e.gone || !e.resident {
			continue
		}
		// A value read since the last pass gets a second chance, once per
		// pass over the clock.
		if e.ref.Load() && swept < len(ix.clock) {
			e.ref.Store(false)
			ix.clock = append(ix.clock, e)
			swept++
			continue
		}
		if ix.onEvict != nil {
			ix.onEvict(e.key, e.mod, e.value)
		}
		e.resident, e.value = false, nil
		ix.valueBytes -= int64(e.vlen)
		ix.evicted++
	}
	// Reclaim the clock's backing array once most of it is dead.
	if cap(ix.clock) > 1024 && len(ix.clock) < cap(ix.clock)/4 {
		ix.clock = slices.Clone(ix.clock)
	}
}

// inRange reports whether key is selected by opts' Key/End.
func inRange(key []byte, opts backend.RangeOptions) bool {
	switch {
	case opts.End == nil:
		return bytes.Equal(key, opts.Key)
	case isFromKey(opts.End):
		return bytes.Compare(key, opts.Key) >= 0
	default:
		return bytes.Compare(key, opts.Key) >= 0 && bytes.Compare(key, opts.End) < 0
	}
}

func isFromKey(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// need is a returned KeyValue whose value is not in memory.
type need struct {
	i     int
	key   []byte
	mod   int64
	vlen  int
	vhash uint64
}

// item is one key of a range result: a current entry or, for a past
// revision, a version from history.
type item struct {
	e  *entry
	kv *backend.KeyValue
}

func (it item) key() []byte {
	if it.e != nil {
		return it.e.key
	}
	return it.kv.Key
}

// rangeAt answers opts at revision r (floor <= r <= applied). ok is false
// when history does not reach back to r. KeyValues whose values are not
// in memory are listed in needs with a nil Value.
func (ix *index) rangeAt(opts backend.RangeOptions, r int64) (res backend.RangeResult, needs []need, ok bool) {
	if r < ix.floor || r > ix.applied {
		return res, nil, false
	}
	res.Revision = r
	// overlay maps each key changed after r to its version at r (nil:
	// absent). Walking newest to oldest, the oldest change wins.
	var overlay map[string]*backend.KeyValue
	for i := len(ix.hist) - 1; i >= 0 && ix.hist[i].KV.ModRevision > r; i-- {
		ev := &ix.hist[i]
		if !inRange(ev.KV.Key, opts) {
			continue
		}
		if overlay == nil {
			overlay = make(map[string]*backend.KeyValue)
		}
		overlay[string(ev.KV.Key)] = ev.PrevKV
	}
	// Without an overlay the tree alone answers: only the first Limit
	// entries are collected, and the range is counted by two binary
	// searches in the sorted key list, or, while that is being rebuilt
	// after keys came or went, by walking it (a paginated list asks for
	// a page of 500 and the count of thousands; walking them all took
	// about a third of the store's CPU in a list of 10,000 objects).
	keep := -1
	if overlay == nil {
		switch {
		case opts.CountOnly:
			keep = 0
		case opts.Limit > 0:
			keep = int(opts.Limit)
		}
	}
	var items []item
	if keep > 0 {
		items = make([]item, 0, min(keep, 1024))
	}
	count := 0
	var (
		counted bool // count is known: the walk collects want entries
		want    int
		walk    = keep >= 0 && opts.End != nil // a range walked only to be counted
	)
	if walk {
		if ks := ix.sortedKeys(); ks != nil {
			count = countRange(ks, opts)
			want = min(keep, count)
			counted, walk = true, false
		}
	}
	visit := func(e *entry) bool {
		if overlay != nil {
			if _, changed := overlay[string(e.key)]; changed {
				return true
			}
		}
		if counted {
			items = append(items, item{e: e})
			return len(items) < want
		}
		count++
		if keep < 0 || len(items) < keep {
			items = append(items, item{e: e})
		}
		return true
	}
	switch {
	case counted && want == 0:
		// Count only, or an empty range: nothing to collect.
	case counted:
		// The first want entries from Key on are in the range (count
		// says so): no comparison with End per entry.
		ix.tree.AscendGreaterOrEqual(&entry{key: opts.Key}, visit)
	case opts.End == nil:
		if e, found := ix.tree.Get(&entry{key: opts.Key}); found {
			visit(e)
		}
	case isFromKey(opts.End):
		ix.tree.AscendGreaterOrEqual(&entry{key: opts.Key}, visit)
	default:
		ix.tree.AscendRange(&entry{key: opts.Key}, &entry{key: opts.End}, visit)
	}
	if walk {
		ix.noteWalk(count)
	}
	if len(overlay) > 0 {
		for _, kv := range overlay {
			if kv != nil {
				items = append(items, item{kv: kv})
			}
		}
		slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key(), b.key()) })
		count = len(items)
	}
	res.Count = int64(count)
	if opts.CountOnly {
		return res, nil, true
	}
	if opts.Limit > 0 && int64(count) > opts.Limit {
		items = items[:min(int64(len(items)), opts.Limit)]
		res.More = true
	}
	if len(items) == 0 {
		return res, nil, true
	}
	res.KVs = make([]backend.KeyValue, len(items))
	for i, it := range items {
		if it.kv != nil {
			kv := *it.kv
			if opts.KeysOnly {
				kv.Value = nil
			}
			res.KVs[i] = kv
			continue
		}
		e := it.e
		kv := e.meta()
		switch {
		case opts.KeysOnly:
		case e.resident:
			kv.Value = e.value
			e.ref.Store(true)
		default:
			needs = append(needs, need{i: i, key: e.key, mod: e.mod, vlen: e.vlen, vhash: e.vhash})
		}
		res.KVs[i] = kv
	}
	return res, needs, true
}

package sqlcommon

import (
	"context"
	"errors"
	"fmt"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Prefetching. A batch's functions run one after another on one
// connection, so every key the write cache does not know would cost a
// round trip (creates of new keys, mostly). Before a batch, the engine
// runs each function once against probeTx, which answers from the write
// cache, records the keys it could not answer, and discards every write.
// The statement that locks the meta row also loads all those keys
// (present or absent); if the locked revision shows that another instance
// wrote since the cache was filled, they are discarded with the cache.
//
// This relies on Update functions being safe to run more than once (the
// store's are: each run starts a fresh evaluator); a probe run's result
// is thrown away.
//
// A probe run's answers are made up (every lease exists, keys outside the
// write cache are absent), so a function that loops until it reads a
// particular answer may never see it: picking an unused lease ID, for
// one, retries for as long as the lease it tried exists. The committer
// runs probes, so such a loop would stop every write of the instance. A
// probe run therefore gets at most probeMaxCalls calls of its probeTx;
// past that every call fails with errProbeLimit and the run ends.

// probeTx is the WriteTx of a probe run.
type probeTx struct {
	c       *writeCache
	rev     int64
	compact int64
	missed  map[string]struct{}
	calls   int // calls of this run, bounded by probeMaxCalls
}

// probeMaxCalls bounds the calls one probe run makes. The store's largest
// functions (transactions of MaxTxnOps operations) make a few hundred.
const probeMaxCalls = 4096

// errProbeLimit ends a probe run that made probeMaxCalls calls.
var errProbeLimit = errors.New("probe run made too many calls")

// spend counts one call and reports whether the run is over its budget.
func (p *probeTx) spend() error {
	p.calls++
	if p.calls > probeMaxCalls {
		return errProbeLimit
	}
	return nil
}

func (p *probeTx) Revision() int64        { return p.rev }
func (p *probeTx) CompactRevision() int64 { return p.compact }

func (p *probeTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	res := backend.RangeResult{Revision: p.rev}
	if err := p.spend(); err != nil {
		return res, err
	}
	if opts.End != nil || (opts.Revision != 0 && opts.Revision != p.rev) {
		return res, nil
	}
	e, ok := p.c.m[string(opts.Key)]
	if !ok {
		p.missed[string(opts.Key)] = struct{}{}
		return res, nil
	}
	if e.exists {
		res.Count = 1
		if !opts.CountOnly {
			res.KVs = []backend.KeyValue{e.kv}
		}
	}
	return res, nil
}

// Lease pretends every lease exists, so that a probed function goes on to
// the keys it reads.
func (p *probeTx) Lease(_ context.Context, id int64) (backend.Lease, error) {
	if err := p.spend(); err != nil {
		return backend.Lease{}, err
	}
	return backend.Lease{ID: id}, nil
}
func (p *probeTx) Leases(context.Context) ([]backend.Lease, error)    { return nil, p.spend() }
func (p *probeTx) LeaseKeys(context.Context, int64) ([][]byte, error) { return nil, p.spend() }
func (p *probeTx) PutLease(context.Context, backend.Lease) error      { return p.spend() }
func (p *probeTx) DeleteLease(context.Context, int64) error           { return p.spend() }
func (p *probeTx) Apply(_ context.Context, rev int64, _ []backend.Event) error {
	if err := p.spend(); err != nil {
		return err
	}
	p.rev = rev
	return nil
}

// prefetchMaxKeys bounds the keys loaded with the meta lock; keys past it
// are read when a function asks for them.
const prefetchMaxKeys = 1000

// probe runs reqs against the write cache as it stands (expected valid at
// rev: a batch whose COMMIT is in flight has already written its changes
// into it) and returns the keys they read that it does not hold.
func (c *writeCache) probe(reqs []*request, rev int64) [][]byte {
	if c.m == nil {
		c.reset(0)
	}
	p := &probeTx{c: c, rev: rev, missed: map[string]struct{}{}}
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			continue
		}
		p.rev, p.calls = rev, 0
		_ = callFn(r.fn, p)
	}
	keys := make([][]byte, 0, len(p.missed))
	for k := range p.missed {
		if len(keys) == prefetchMaxKeys {
			break
		}
		keys = append(keys, []byte(k))
	}
	return keys
}

// lockAndPrefetch locks the meta row and, in the same statement, reads the
// current version of keys. It returns the revisions and the versions found
// (keys not found do not exist).
func (b *batch) lockAndPrefetch(keys [][]byte) (rev, compact int64, found []backend.KeyValue, err error) {
	if len(keys) == 0 {
		rev, compact, err = readMeta(b.query, true)
		return rev, compact, nil, err
	}
	cond, args := b.e.d.KeyIn("c.k", keys)
	q := "SELECT m.rev, m.compact_rev, c.k, c.create_rev, c.mod_rev, c.version, c.lease, c.value" +
		" FROM meta m LEFT JOIN kv_current c ON " + cond +
		" WHERE m.id = 1" + b.e.d.ForUpdateOf("m")
	rows, err := b.query(q, args...)
	if err != nil {
		return 0, 0, nil, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var k, v []byte
		var cr, mr, ver, lease *int64
		if err := rows.Scan(&rev, &compact, &k, &cr, &mr, &ver, &lease, &v); err != nil {
			return 0, 0, nil, err
		}
		if k != nil && cr != nil {
			found = append(found, backend.KeyValue{Key: k, Value: nonNil(v), CreateRevision: *cr,
				ModRevision: *mr, Version: *ver, Lease: *lease})
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, nil, err
	}
	if n == 0 {
		return 0, 0, nil, fmt.Errorf("meta row missing: %w", backend.ErrCorrupt)
	}
	return rev, compact, found, rows.Close()
}

// fill records prefetched keys: found versions, and absence of the rest.
// Keys the cache already holds keep their entry.
//
// That rule is what makes overlapped batches safe. Batch N+1's prefetch
// is one statement sent while batch N held the meta lock; the database
// answers it once N has committed, but on PostgreSQL its rows come from a
// snapshot taken when it started, before N's writes. fill is only called
// when the locked revision equals the cache's (no instance but this one
// wrote since), so the only rows that can be stale are keys N wrote, and
// the cache holds every one of those from N's Apply calls.
func (c *writeCache) fill(keys [][]byte, found []backend.KeyValue) {
	seen := make(map[string]struct{}, len(found))
	for _, kv := range found {
		seen[string(kv.Key)] = struct{}{}
		if _, ok := c.m[string(kv.Key)]; !ok {
			c.set(kv.Key, cacheEntry{kv: kv, exists: true}, false)
		}
	}
	for _, k := range keys {
		if _, ok := seen[string(k)]; ok {
			continue
		}
		if _, ok := c.m[string(k)]; !ok {
			c.set(k, cacheEntry{}, false)
		}
	}
}

package sqlcommon

import (
	"context"
	"fmt"
	"strings"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// Prefetching. A batch's functions run one after another on one
// connection, so every key the write cache does not know costs a round
// trip (creates of new keys, mostly). Before running a batch of several
// functions for real, the engine runs each once against probeTx, which
// answers from the write cache, records the keys it could not answer, and
// discards every write. One query then loads all those keys (present or
// absent) into the cache, and the real run finds them there.
//
// This relies on Update functions being safe to run more than once (the
// store's are: each run starts a fresh evaluator); a probe run's result
// is thrown away.

// probeTx is the WriteTx of a probe run.
type probeTx struct {
	c       *writeCache
	rev     int64
	compact int64
	missed  map[string]struct{}
}

func (p *probeTx) Revision() int64        { return p.rev }
func (p *probeTx) CompactRevision() int64 { return p.compact }

func (p *probeTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	res := backend.RangeResult{Revision: p.rev}
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

func (p *probeTx) Lease(context.Context, int64) (backend.Lease, error) {
	return backend.Lease{}, backend.ErrLeaseNotFound
}
func (p *probeTx) Leases(context.Context) ([]backend.Lease, error)    { return nil, nil }
func (p *probeTx) LeaseKeys(context.Context, int64) ([][]byte, error) { return nil, nil }
func (p *probeTx) PutLease(context.Context, backend.Lease) error      { return nil }
func (p *probeTx) DeleteLease(context.Context, int64) error           { return nil }
func (p *probeTx) Apply(_ context.Context, rev int64, _ []backend.Event) error {
	p.rev = rev
	return nil
}

// prefetchKeysPerQuery bounds one prefetch query.
const prefetchKeysPerQuery = 500

// prefetch probes reqs and loads the keys they would read into the cache.
func (b *batch) prefetch(reqs []*request, rev, compact int64) error {
	p := &probeTx{c: b.cache, compact: compact, missed: map[string]struct{}{}}
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			continue
		}
		p.rev = rev
		_ = callFn(r.fn, p)
	}
	if len(p.missed) == 0 {
		return nil
	}
	keys := make([][]byte, 0, len(p.missed))
	for k := range p.missed {
		keys = append(keys, []byte(k))
	}
	for len(keys) > 0 {
		n := min(len(keys), prefetchKeysPerQuery)
		part := keys[:n]
		keys = keys[n:]
		args := make([]any, n)
		for i, k := range part {
			args[i] = k
		}
		q := "SELECT k, create_rev, mod_rev, version, lease, value FROM kv_current WHERE k IN (?" +
			strings.Repeat(", ?", n-1) + ")"
		rows, err := b.queryUnflushed(q, args...)
		if err != nil {
			return err
		}
		kvs, err := scanKVs(rows)
		if err != nil {
			return fmt.Errorf("prefetching keys: %w", err)
		}
		found := make(map[string]struct{}, len(kvs))
		for _, kv := range kvs {
			found[string(kv.Key)] = struct{}{}
			b.cache.set(kv.Key, cacheEntry{kv: kv, exists: true}, false)
		}
		for _, k := range part {
			if _, ok := found[string(k)]; !ok {
				b.cache.set(k, cacheEntry{}, false)
			}
		}
	}
	return nil
}

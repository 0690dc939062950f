package sqlcommon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// readTx implements backend.ReadTx over one connection.
type readTx struct {
	run     queryFunc
	d       Dialect
	rev     int64
	compact int64
}

func (t *readTx) Revision() int64        { return t.rev }
func (t *readTx) CompactRevision() int64 { return t.compact }

// keyCond returns the WHERE condition selecting opts' keys in column col.
func keyCond(col string, opts backend.RangeOptions) (string, []any) {
	switch {
	case opts.End == nil:
		return col + " = ?", []any{nonNil(opts.Key)}
	case len(opts.End) == 1 && opts.End[0] == 0:
		return col + " >= ?", []any{nonNil(opts.Key)}
	default:
		return col + " >= ? AND " + col + " < ?", []any{nonNil(opts.Key), opts.End}
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *readTx) Range(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	if err := ctx.Err(); err != nil {
		return backend.RangeResult{}, err
	}
	at := opts.Revision
	switch {
	case at > t.rev:
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (current %d): %w", at, t.rev, backend.ErrFutureRevision)
	case at > 0 && at < t.compact:
		return backend.RangeResult{}, fmt.Errorf("range at revision %d (compacted to %d): %w", at, t.compact, backend.ErrCompacted)
	case at <= 0:
		at = t.rev
	}
	res := backend.RangeResult{Revision: at}
	if opts.End != nil && !(len(opts.End) == 1 && opts.End[0] == 0) && bytes.Compare(opts.Key, opts.End) >= 0 {
		return res, nil
	}
	// cur reads kv_current (an index range scan); a past revision reads
	// each key's newest version at or below it from kv_history.
	cond, args := keyCond("k", opts)
	selectSQL := func(val string) string {
		return "SELECT k, create_rev, mod_rev, version, lease, " + val + " FROM kv_current WHERE " + cond + " ORDER BY k"
	}
	countSQL := "SELECT COUNT(*) FROM kv_current WHERE " + cond
	if at != t.rev {
		from := " FROM kv_history h JOIN (SELECT k, MAX(rev) AS rev FROM kv_history WHERE " + cond + " AND rev <= ? GROUP BY k) m" +
			" ON h.k = m.k AND h.rev = m.rev WHERE h.del = 0"
		args = append(args, at)
		selectSQL = func(val string) string {
			if val != "NULL" {
				val = "h." + val
			}
			return "SELECT h.k, h.create_rev, h.rev, h.version, h.lease, " + val + from + " ORDER BY h.k"
		}
		countSQL = "SELECT COUNT(*)" + from
	}
	count := func() (int64, error) {
		rows, err := t.run(countSQL, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var n int64
		if rows.Next() {
			if err := rows.Scan(&n); err != nil {
				return 0, err
			}
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
		return n, rows.Close()
	}
	if opts.CountOnly {
		n, err := count()
		if err != nil {
			return res, fmt.Errorf("counting range: %w", err)
		}
		res.Count = n
		return res, nil
	}
	val := "value"
	if opts.KeysOnly {
		val = "NULL"
	}
	q := selectSQL(val)
	qargs := args
	if opts.Limit > 0 {
		q += " LIMIT ?"
		qargs = append(append([]any{}, args...), opts.Limit+1)
	}
	rows, err := t.run(q, qargs...)
	if err != nil {
		return res, fmt.Errorf("reading range: %w", err)
	}
	kvs, err := scanKVs(rows)
	if err != nil {
		return res, fmt.Errorf("reading range: %w", err)
	}
	if opts.Limit > 0 && int64(len(kvs)) > opts.Limit {
		kvs = kvs[:opts.Limit]
		res.More = true
		n, err := count()
		if err != nil {
			return res, fmt.Errorf("counting range: %w", err)
		}
		res.Count = n
	} else {
		res.Count = int64(len(kvs))
	}
	res.KVs = kvs
	return res, nil
}

func scanKVs(rows Rows) ([]backend.KeyValue, error) {
	defer rows.Close()
	var kvs []backend.KeyValue
	for rows.Next() {
		var kv backend.KeyValue
		if err := rows.Scan(&kv.Key, &kv.CreateRevision, &kv.ModRevision, &kv.Version, &kv.Lease, &kv.Value); err != nil {
			return nil, err
		}
		if kv.Key == nil {
			kv.Key = []byte{}
		}
		kvs = append(kvs, kv)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return kvs, rows.Close()
}

func (t *readTx) Lease(ctx context.Context, id int64) (backend.Lease, error) {
	ls, err := t.leases(ctx, "SELECT id, ttl, expiry_ns FROM leases WHERE id = ?", id)
	if err != nil {
		return backend.Lease{}, err
	}
	if len(ls) == 0 {
		return backend.Lease{}, fmt.Errorf("lease %d: %w", id, backend.ErrLeaseNotFound)
	}
	return ls[0], nil
}

func (t *readTx) Leases(ctx context.Context) ([]backend.Lease, error) {
	return t.leases(ctx, "SELECT id, ttl, expiry_ns FROM leases ORDER BY id")
}

func (t *readTx) leases(ctx context.Context, q string, args ...any) ([]backend.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := t.run(q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading leases: %w", err)
	}
	defer rows.Close()
	var ls []backend.Lease
	for rows.Next() {
		var l backend.Lease
		var exp int64
		if err := rows.Scan(&l.ID, &l.TTL, &exp); err != nil {
			return nil, fmt.Errorf("reading leases: %w", err)
		}
		if exp != 0 {
			l.Expiry = time.Unix(0, exp)
		}
		ls = append(ls, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading leases: %w", err)
	}
	return ls, rows.Close()
}

func (t *readTx) LeaseKeys(ctx context.Context, id int64) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, nil
	}
	// "lease <> 0" lets PostgreSQL use its partial index.
	rows, err := t.run("SELECT k FROM kv_current WHERE lease = ? AND lease <> 0 ORDER BY k", id)
	if err != nil {
		return nil, fmt.Errorf("reading lease keys: %w", err)
	}
	defer rows.Close()
	var keys [][]byte
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("reading lease keys: %w", err)
		}
		keys = append(keys, nonNil(k))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading lease keys: %w", err)
	}
	return keys, rows.Close()
}

// writeTx implements backend.WriteTx inside a batch.
type writeTx struct {
	readTx
	b *batch
}

func (t *writeTx) Apply(ctx context.Context, rev int64, events []backend.Event) error {
	if t.b.err != nil {
		return t.b.err
	}
	if rev != t.rev+1 {
		return fmt.Errorf("apply at revision %d: want %d", rev, t.rev+1)
	}
	if len(events) == 0 {
		return errors.New("apply: no events")
	}
	max := t.d.MaxKeySize()
	seen := make(map[string]struct{}, len(events))
	hist := make([]HistoryRow, len(events))
	var dels [][]byte
	var puts []backend.KeyValue
	for i, ev := range events {
		kv := ev.KV
		if kv.ModRevision != rev {
			return fmt.Errorf("apply at revision %d: event %d has mod revision %d", rev, i, kv.ModRevision)
		}
		if len(kv.Key) == 0 {
			return fmt.Errorf("apply at revision %d: event %d has an empty key", rev, i)
		}
		if len(kv.Key) > max {
			return fmt.Errorf("apply at revision %d: key of %d bytes exceeds the %s engine's limit of %d", rev, len(kv.Key), t.d.Name(), max)
		}
		if _, dup := seen[string(kv.Key)]; dup {
			return fmt.Errorf("apply at revision %d: key %q written twice", rev, kv.Key)
		}
		seen[string(kv.Key)] = struct{}{}
		h := HistoryRow{Rev: rev, Sub: int64(i), Key: kv.Key, Value: []byte{}}
		if ev.PrevKV != nil {
			h.PrevRev = ev.PrevKV.ModRevision
		}
		switch ev.Type {
		case backend.EventPut:
			h.CreateRev, h.Version, h.Lease, h.Value = kv.CreateRevision, kv.Version, kv.Lease, nonNil(kv.Value)
			kv.Value = h.Value
			puts = append(puts, kv)
		case backend.EventDelete:
			h.Del = true
			dels = append(dels, kv.Key)
		default:
			return fmt.Errorf("apply at revision %d: event %d has unknown type %d", rev, i, ev.Type)
		}
		hist[i] = h
	}
	t.b.hist = append(t.b.hist, hist...)
	if t.b.feed {
		for _, ev := range events {
			fe, n := feedEvent(ev)
			t.b.evs = append(t.b.evs, fe)
			t.b.evBytes += n
		}
	}
	for _, kv := range puts {
		t.b.curLog = append(t.b.curLog, curOp{key: kv.Key, kv: kv, fresh: t.absent(kv.Key)})
		t.b.touched[string(kv.Key)] = struct{}{}
	}
	for _, k := range dels {
		t.b.curLog = append(t.b.curLog, curOp{key: k, del: true})
		t.b.touched[string(k)] = struct{}{}
	}
	t.cacheApply(puts, dels)
	t.rev = rev
	return nil
}

// absent reports that key had no row in kv_current when the batch began:
// the write cache, valid at the batch's start, says so and nothing in the
// batch wrote the key since. Without the cache nothing is known absent.
func (t *writeTx) absent(key []byte) bool {
	if t.b.cache == nil {
		return false
	}
	if _, ok := t.b.touched[string(key)]; ok {
		return false
	}
	e, ok := t.b.cache.m[string(key)]
	return ok && !e.exists
}

func (t *writeTx) PutLease(ctx context.Context, l backend.Lease) error {
	if t.b.err != nil {
		return t.b.err
	}
	t.b.queue(t.d.PutLease(l))
	return nil
}

func (t *writeTx) DeleteLease(ctx context.Context, id int64) error {
	if t.b.err != nil {
		return t.b.err
	}
	t.b.queue(Stmt{SQL: "DELETE FROM leases WHERE id = ?", Args: []any{id}})
	return nil
}

// ExpiryNanos is how a lease expiry is stored (0 for the zero time).
func ExpiryNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

package store

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// evaluator runs one etcd request (Range, Put, DeleteRange, Txn) inside one
// backend transaction. Writes are collected in an overlay (so later
// operations of the same Txn see them, as in etcd) and handed to
// WriteTx.Apply once, by commit, at revision base+1.
//
// A fresh evaluator is made for every invocation of an Update function, so
// an engine that re-runs the function gets a clean state.
type evaluator struct {
	rtx     backend.ReadTx
	wtx     backend.WriteTx // nil for read-only evaluation (View)
	base    int64           // store revision before this transaction
	compact int64           // compaction point

	ov     map[string]*ovEntry // keys written by this transaction
	events []backend.Event
}

// ovEntry is one key written by the running transaction.
type ovEntry struct {
	cur   *backend.KeyValue // state now; nil when deleted
	event int               // index of its event in evaluator.events
}

func newEvaluator(rtx backend.ReadTx, wtx backend.WriteTx) *evaluator {
	return &evaluator{rtx: rtx, wtx: wtx, base: rtx.Revision(), compact: rtx.CompactRevision()}
}

// rev is the revision a read inside the transaction observes: base, or
// base+1 once the transaction changed something (etcd's storeTxnWrite).
func (e *evaluator) rev() int64 {
	if len(e.events) > 0 {
		return e.base + 1
	}
	return e.base
}

// commit applies the collected events, if any, at base+1.
func (e *evaluator) commit(ctx context.Context) error {
	if len(e.events) == 0 {
		return nil
	}
	if e.wtx == nil {
		return fmt.Errorf("write in a read-only transaction")
	}
	if err := e.wtx.Apply(ctx, e.base+1, e.events); err != nil {
		return fmt.Errorf("applying revision %d: %w", e.base+1, err)
	}
	return nil
}

// normEnd turns a request's range_end into backend.RangeOptions.End: empty
// means the single key, "\x00" every key >= key, anything else [key, end).
func normEnd(end []byte) []byte {
	if len(end) == 0 {
		return nil
	}
	return end
}

// isEmptyRange reports a range that can hold no key (end <= key).
func isEmptyRange(key, end []byte) bool {
	if end == nil || (len(end) == 1 && end[0] == 0) {
		return false
	}
	return bytes.Compare(key, end) >= 0
}

// inRange reports whether k lies in the range (key, end) as normEnd gives it.
func inRange(k, key, end []byte) bool {
	if end == nil {
		return bytes.Equal(k, key)
	}
	if bytes.Compare(k, key) < 0 {
		return false
	}
	if len(end) == 1 && end[0] == 0 {
		return true
	}
	return bytes.Compare(k, end) < 0
}

// checkRev applies etcd's revision rules for a read at rev (0 = current).
func (e *evaluator) checkRev(rev int64) error {
	switch {
	case rev == 0:
		return nil
	case rev > e.base:
		return rpctypes.ErrGRPCFutureRev
	case rev < e.compact:
		return rpctypes.ErrGRPCCompacted
	}
	return nil
}

// rangeKVs reads keys as the transaction sees them: at opts.Revision from
// the backend, or (Revision 0) the backend state merged with this
// transaction's own writes.
func (e *evaluator) rangeKVs(ctx context.Context, opts backend.RangeOptions) (backend.RangeResult, error) {
	if isEmptyRange(opts.Key, opts.End) {
		return backend.RangeResult{Revision: e.rev()}, nil
	}
	if opts.Revision != 0 || len(e.ov) == 0 {
		res, err := e.rtx.Range(ctx, opts)
		if err != nil {
			return res, err
		}
		if opts.Limit > 0 && int64(len(res.KVs)) > opts.Limit {
			res.KVs = res.KVs[:opts.Limit] // defensive: engines must honour Limit
		}
		return res, nil
	}
	// Overlay entries inside the range, in key order.
	var keys []string
	for k := range e.ov {
		if inRange([]byte(k), opts.Key, opts.End) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return e.rtx.Range(ctx, opts)
	}
	sort.Strings(keys)
	var removed, added int64 // keys that existed at base and are gone now; keys new now
	for _, k := range keys {
		en := e.ov[k]
		existed := e.events[en.event].PrevKV != nil
		switch {
		case en.cur == nil && existed:
			removed++
		case en.cur != nil && !existed:
			added++
		}
	}
	bopts := opts
	if opts.Limit > 0 {
		bopts.Limit = opts.Limit + removed
	}
	res, err := e.rtx.Range(ctx, bopts)
	if err != nil {
		return res, err
	}
	out := backend.RangeResult{Count: res.Count - removed + added, Revision: e.rev()}
	if opts.CountOnly {
		return out, nil
	}
	kvs := make([]backend.KeyValue, 0, len(res.KVs)+len(keys))
	i := 0
	for _, kv := range res.KVs {
		if _, ok := e.ov[string(kv.Key)]; ok {
			continue // the overlay has the current state of this key
		}
		for i < len(keys) && keys[i] < string(kv.Key) {
			kvs = appendOverlay(kvs, e.ov[keys[i]], opts.KeysOnly)
			i++
		}
		kvs = append(kvs, kv)
	}
	// Overlay keys past the last backend key are only valid if the backend
	// range was not truncated, or if they still sort inside the window.
	truncated := opts.Limit > 0 && len(res.KVs) > 0 && res.Count > int64(len(res.KVs))
	for ; i < len(keys); i++ {
		if truncated && keys[i] > string(res.KVs[len(res.KVs)-1].Key) {
			break
		}
		kvs = appendOverlay(kvs, e.ov[keys[i]], opts.KeysOnly)
	}
	if opts.Limit > 0 && int64(len(kvs)) > opts.Limit {
		kvs = kvs[:opts.Limit]
	}
	out.KVs = kvs
	out.More = out.Count > int64(len(kvs))
	return out, nil
}

func appendOverlay(kvs []backend.KeyValue, en *ovEntry, keysOnly bool) []backend.KeyValue {
	if en.cur == nil {
		return kvs
	}
	kv := *en.cur
	if keysOnly {
		kv.Value = nil
	}
	return append(kvs, kv)
}

// get returns the current state of one key (nil if absent).
func (e *evaluator) get(ctx context.Context, key []byte) (*backend.KeyValue, error) {
	if en, ok := e.ov[string(key)]; ok {
		return en.cur, nil
	}
	res, err := e.rtx.Range(ctx, backend.RangeOptions{Key: key})
	if err != nil {
		return nil, err
	}
	if len(res.KVs) == 0 {
		return nil, nil
	}
	kv := res.KVs[0]
	return &kv, nil
}

// record adds an event for key at base+1 and updates the overlay. prev is
// the state the key had before this change. A key changed twice in one
// transaction keeps one event whose PrevKV is the state at base.
func (e *evaluator) record(typ backend.EventType, kv backend.KeyValue, prev *backend.KeyValue) {
	if e.ov == nil {
		e.ov = make(map[string]*ovEntry)
	}
	var cur *backend.KeyValue
	if typ == backend.EventPut {
		c := kv
		cur = &c
	}
	if en, ok := e.ov[string(kv.Key)]; ok {
		ev := &e.events[en.event]
		ev.Type, ev.KV = typ, kv
		en.cur = cur
		return
	}
	var p *backend.KeyValue
	if prev != nil {
		c := *prev
		p = &c
	}
	e.events = append(e.events, backend.Event{Type: typ, KV: kv, PrevKV: p})
	e.ov[string(kv.Key)] = &ovEntry{cur: cur, event: len(e.events) - 1}
}

func toPB(kv backend.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            kv.Key,
		Value:          kv.Value,
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Lease:          kv.Lease,
	}
}

// execRange evaluates a RangeRequest as etcd's executeRange does.
func (e *evaluator) execRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := e.checkRev(r.Revision); err != nil {
		return nil, err
	}
	filtered := r.SortOrder != pb.RangeRequest_NONE ||
		r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	limit := r.Limit
	if filtered || limit < 0 {
		limit = 0
	}
	if limit > 0 {
		limit++ // one more, for More
	}
	opts := backend.RangeOptions{
		Key:       r.Key,
		End:       normEnd(r.RangeEnd),
		Revision:  r.Revision,
		Limit:     limit,
		KeysOnly:  r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE,
		CountOnly: r.CountOnly,
	}
	res, err := e.rangeKVs(ctx, opts)
	if err != nil {
		return nil, err
	}
	kvs := res.KVs
	if r.CountOnly {
		kvs = nil
	}
	prune := func(drop func(kv *backend.KeyValue) bool) {
		j := 0
		for i := range kvs {
			if !drop(&kvs[i]) {
				kvs[j] = kvs[i]
				j++
			}
		}
		kvs = kvs[:j]
	}
	if r.MaxModRevision != 0 {
		prune(func(kv *backend.KeyValue) bool { return kv.ModRevision > r.MaxModRevision })
	}
	if r.MinModRevision != 0 {
		prune(func(kv *backend.KeyValue) bool { return kv.ModRevision < r.MinModRevision })
	}
	if r.MaxCreateRevision != 0 {
		prune(func(kv *backend.KeyValue) bool { return kv.CreateRevision > r.MaxCreateRevision })
	}
	if r.MinCreateRevision != 0 {
		prune(func(kv *backend.KeyValue) bool { return kv.CreateRevision < r.MinCreateRevision })
	}
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	} else if r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE // already in key order
	}
	if order != pb.RangeRequest_NONE {
		var less func(a, b *backend.KeyValue) bool
		switch r.SortTarget {
		case pb.RangeRequest_KEY:
			less = func(a, b *backend.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
		case pb.RangeRequest_VERSION:
			less = func(a, b *backend.KeyValue) bool { return a.Version < b.Version }
		case pb.RangeRequest_CREATE:
			less = func(a, b *backend.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
		case pb.RangeRequest_MOD:
			less = func(a, b *backend.KeyValue) bool { return a.ModRevision < b.ModRevision }
		case pb.RangeRequest_VALUE:
			less = func(a, b *backend.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
		default:
			return nil, rpctypes.ErrGRPCInvalidSortOption
		}
		if order == pb.RangeRequest_DESCEND {
			sort.SliceStable(kvs, func(i, j int) bool { return less(&kvs[j], &kvs[i]) })
		} else {
			sort.SliceStable(kvs, func(i, j int) bool { return less(&kvs[i], &kvs[j]) })
		}
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: e.rev()}, Count: res.Count}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	resp.Kvs = make([]*mvccpb.KeyValue, len(kvs))
	slab := make([]mvccpb.KeyValue, len(kvs)) // one allocation for a page of 500
	for i := range kvs {
		kv := kvs[i]
		if r.KeysOnly {
			kv.Value = nil
		}
		slab[i] = mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
			ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
		resp.Kvs[i] = &slab[i]
	}
	return resp, nil
}

// execPut evaluates a PutRequest (after its checks).
func (e *evaluator) execPut(ctx context.Context, p *pb.PutRequest) (*pb.PutResponse, error) {
	cur, err := e.get(ctx, p.Key)
	if err != nil {
		return nil, err
	}
	if (p.IgnoreValue || p.IgnoreLease) && cur == nil {
		return nil, rpctypes.ErrGRPCKeyNotFound
	}
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = cur.Value
	}
	if p.IgnoreLease {
		lease = cur.Lease
	}
	rev := e.base + 1
	kv := backend.KeyValue{Key: p.Key, Value: val, CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	if cur != nil {
		kv.CreateRevision = cur.CreateRevision
		kv.Version = cur.Version + 1
	}
	if kv.Value == nil {
		kv.Value = []byte{}
	}
	e.record(backend.EventPut, kv, cur)
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: rev}}
	if p.PrevKv && cur != nil {
		resp.PrevKv = toPB(*cur)
	}
	return resp, nil
}

// execDelete evaluates a DeleteRangeRequest.
func (e *evaluator) execDelete(ctx context.Context, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	res, err := e.rangeKVs(ctx, backend.RangeOptions{Key: d.Key, End: normEnd(d.RangeEnd)})
	if err != nil {
		return nil, err
	}
	rev := e.base + 1
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}, Deleted: int64(len(res.KVs))}
	for i := range res.KVs {
		prev := res.KVs[i]
		e.record(backend.EventDelete, backend.KeyValue{Key: prev.Key, ModRevision: rev}, &prev)
		if d.PrevKv {
			resp.PrevKvs = append(resp.PrevKvs, toPB(prev))
		}
	}
	resp.Header.Revision = e.rev()
	return resp, nil
}

// txnPath is the branch each (nested) Txn takes, decided from the state
// before the transaction, in the order etcd's compareToPath visits them.
type txnPath struct {
	taken []bool
	next  int
}

func (p *txnPath) pop() bool {
	b := p.taken[p.next]
	p.next++
	return b
}

// comparePath evaluates the compares of r and of every nested Txn along
// the branches taken, all against the state before any write, as etcd does.
func (e *evaluator) comparePath(ctx context.Context, r *pb.TxnRequest, path []bool) ([]bool, error) {
	ok, err := e.compares(ctx, r.Compare)
	if err != nil {
		return nil, err
	}
	path = append(path, ok)
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	for _, op := range ops {
		if t := op.GetRequestTxn(); t != nil {
			if path, err = e.comparePath(ctx, t, path); err != nil {
				return nil, err
			}
		}
	}
	return path, nil
}

func (e *evaluator) compares(ctx context.Context, cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		ok, err := e.compare(ctx, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (e *evaluator) compare(ctx context.Context, c *pb.Compare) (bool, error) {
	res, err := e.rangeKVs(ctx, backend.RangeOptions{Key: c.Key, End: normEnd(c.RangeEnd)})
	if err != nil {
		return false, err
	}
	if len(res.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			// A missing key's value compares false: there is no way to
			// tell a missing value from an empty one.
			return false, nil
		}
		return compareKV(c, &backend.KeyValue{}), nil
	}
	for i := range res.KVs {
		if !compareKV(c, &res.KVs[i]) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *backend.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkPath runs etcd's pre-execution checks (checkTxn) along the path:
// read revisions, keys needed by ignore_value/ignore_lease, leases.
func (e *evaluator) checkPath(ctx context.Context, r *pb.TxnRequest, p *txnPath) error {
	ops := r.Success
	if !p.pop() {
		ops = r.Failure
	}
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if err := e.checkRev(v.RequestRange.Revision); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			if err := e.checkPut(ctx, v.RequestPut); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if err := e.checkPath(ctx, v.RequestTxn, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPut checks what a put needs from the state before the transaction.
func (e *evaluator) checkPut(ctx context.Context, p *pb.PutRequest) error {
	if p.IgnoreValue || p.IgnoreLease {
		cur, err := e.get(ctx, p.Key)
		if err != nil {
			return err
		}
		if cur == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
	}
	return e.checkLease(ctx, p.Lease)
}

func (e *evaluator) checkLease(ctx context.Context, id int64) error {
	if id == 0 {
		return nil
	}
	if _, err := e.rtx.Lease(ctx, id); err != nil {
		return err
	}
	return nil
}

// execTxn evaluates a TxnRequest: compares and checks first, then the
// operations of the branches taken.
func (e *evaluator) execTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	taken, err := e.comparePath(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	if err := e.checkPath(ctx, r, &txnPath{taken: taken}); err != nil {
		return nil, err
	}
	resp, err := e.runTxn(ctx, r, &txnPath{taken: taken})
	if err != nil {
		return nil, err
	}
	resp.Header.Revision = e.rev()
	return resp, nil
}

func (e *evaluator) runTxn(ctx context.Context, r *pb.TxnRequest, p *txnPath) (*pb.TxnResponse, error) {
	ok := p.pop()
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: ok, Responses: make([]*pb.ResponseOp, len(ops))}
	for i, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := e.execRange(ctx, v.RequestRange)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
		case *pb.RequestOp_RequestPut:
			pr, err := e.execPut(ctx, v.RequestPut)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: pr}}
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := e.execDelete(ctx, v.RequestDeleteRange)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}}
		case *pb.RequestOp_RequestTxn:
			tr, err := e.runTxn(ctx, v.RequestTxn, p)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}}
		}
	}
	return resp, nil
}

// isTxnReadOnly reports a Txn whose branches hold only ranges (a nested
// Txn counts as a write, as in etcd).
func isTxnReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

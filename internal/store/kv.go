package store

import (
	"bytes"
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// kvServer implements etcd's KV service.
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	resp, err := k.s.doRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

func (s *Server) doRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	var resp *pb.RangeResponse
	err := s.be.View(ctx, func(tx backend.ReadTx) error {
		var err error
		resp, err = newEvaluator(tx, nil).execRange(ctx, r)
		return err
	})
	return resp, err
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r.Size()); err != nil {
		return nil, err
	}
	resp, err := k.s.doPut(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

func (s *Server) doPut(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	var resp *pb.PutResponse
	err := s.be.Update(ctx, func(tx backend.WriteTx) error {
		e := newEvaluator(tx, tx)
		// etcd looks the lease up before anything else.
		if err := e.checkLease(ctx, r.Lease); err != nil {
			return err
		}
		var err error
		if resp, err = e.execPut(ctx, r); err != nil {
			return err
		}
		return e.commit(ctx)
	})
	return resp, err
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r.Size()); err != nil {
		return nil, err
	}
	var resp *pb.DeleteRangeResponse
	err := k.s.be.Update(ctx, func(tx backend.WriteTx) error {
		e := newEvaluator(tx, tx)
		var err error
		if resp, err = e.execDelete(ctx, r); err != nil {
			return err
		}
		return e.commit(ctx)
	})
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxnRequest(r, k.s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Failure); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r.Size()); err != nil {
		return nil, err
	}
	resp, err := k.s.doTxn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

func (s *Server) doTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	var resp *pb.TxnResponse
	if isTxnReadOnly(r) {
		err := s.be.View(ctx, func(tx backend.ReadTx) error {
			var err error
			resp, err = newEvaluator(tx, nil).execTxn(ctx, r)
			return err
		})
		return resp, err
	}
	err := s.be.Update(ctx, func(tx backend.WriteTx) error {
		e := newEvaluator(tx, tx)
		var err error
		if resp, err = e.execTxn(ctx, r); err != nil {
			return err
		}
		return e.commit(ctx)
	})
	return resp, err
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	var cur, compacted int64
	err := k.s.be.View(ctx, func(tx backend.ReadTx) error {
		cur, compacted = tx.Revision(), tx.CompactRevision()
		return nil
	})
	if err != nil {
		return nil, toGRPCError(err)
	}
	k.s.noteCompaction(compacted)
	switch {
	case r.Revision <= compacted:
		return nil, rpctypes.ErrGRPCCompacted
	case r.Revision > cur:
		return nil, rpctypes.ErrGRPCFutureRev
	}
	// Compact is durable when it returns, which also satisfies Physical.
	if err := k.s.be.Compact(ctx, r.Revision); err != nil {
		return nil, toGRPCError(err)
	}
	k.s.noteCompaction(r.Revision)
	k.s.log.Debug("compacted", "revision", r.Revision)
	resp := &pb.CompactionResponse{Header: &pb.ResponseHeader{}}
	k.s.fillHeader(resp.Header)
	return resp, nil
}

// checkSize rejects a write request larger than MaxRequestBytes with
// etcd's error.
func (s *Server) checkSize(n int) error {
	if n > s.cfg.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

// Request validation, with etcd's rules and errors (v3rpc/key.go).

func checkRangeRequest(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPutRequest(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func checkTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkRequestOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(op *pb.RequestOp, maxTxnOps int) error {
	switch v := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		if v.RequestRange == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
		return checkRangeRequest(v.RequestRange)
	case *pb.RequestOp_RequestPut:
		if v.RequestPut == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
		return checkPutRequest(v.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		if v.RequestDeleteRange == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
		return checkDeleteRequest(v.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		if v.RequestTxn == nil {
			return rpctypes.ErrGRPCKeyNotFound
		}
		return checkTxnRequest(v.RequestTxn, maxTxnOps)
	default:
		return rpctypes.ErrGRPCKeyNotFound // empty op, as etcd
	}
}

// interval is a deleted key range: [key, end), or the single key when end
// is nil. As in etcd's interval tree, the bounds compare bytewise with no
// special meaning for "\x00": a from-key delete never conflicts.
type interval struct{ key, end []byte }

func (iv interval) contains(k []byte) bool {
	if iv.end == nil {
		return bytes.Equal(k, iv.key)
	}
	return bytes.Compare(iv.key, k) <= 0 && bytes.Compare(k, iv.end) < 0
}

type intervals []interval

func (ivs intervals) contains(k []byte) bool {
	for _, iv := range ivs {
		if iv.contains(k) {
			return true
		}
	}
	return false
}

// checkIntervals enforces etcd's rule that a Txn branch may not put a key
// twice or put a key it also deletes (including through nested Txns; the
// then and else branches of one nested Txn may put the same key). It
// returns the keys put and ranges deleted at this level and below.
func checkIntervals(ops []*pb.RequestOp) (map[string]struct{}, intervals, error) {
	var dels intervals
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			end := normEnd(d.RangeEnd)
			dels = append(dels, interval{key: d.Key, end: end})
		}
	}
	puts := make(map[string]struct{})
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkIntervals(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || dels.contains([]byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, safe := putsThen[k]; !safe {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if dels.contains([]byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, ok := puts[k]; ok || dels.contains(p.Key) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

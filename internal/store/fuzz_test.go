package store

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/embedded"
)

// FuzzTxn decodes arbitrary bytes into a TxnRequest and sends it through
// the same validation and evaluator as the gRPC handler. It must never
// panic, and the store must keep etcd's invariants: the revision moves by
// exactly one for a transaction that changed something and not at all
// otherwise, and every key's create/mod revision and version stay sane.
func FuzzTxn(f *testing.F) {
	seed := func(r *pb.TxnRequest) {
		b, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	put := func(k, v string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), PrevKv: true}}}
	}
	get := func(k, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: []byte(end), Limit: 2}}}
	}
	del := func(k, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end), PrevKv: true}}}
	}
	seed(&pb.TxnRequest{Success: []*pb.RequestOp{put("a", "1"), get("a", "z")}})
	seed(&pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}},
		Success: []*pb.RequestOp{put("b", "2"), del("c", "\x00")},
		Failure: []*pb.RequestOp{get("a", "")},
	})
	seed(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), RangeEnd: []byte("c"), Target: pb.Compare_VALUE, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_Value{Value: []byte("0")}}},
		Success: []*pb.RequestOp{put("x", "y"), get("a", "\x00")},
	}}}, del("a", "b")}})

	be, err := embedded.Open(f.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { be.Close() })
	s := &Server{cfg: Default(), be: be}
	ctx := context.Background()
	// A few keys so compares and ranges have something to look at.
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.doPut(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(k)}); err != nil {
			f.Fatal(err)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.TxnRequest
		if err := r.Unmarshal(data); err != nil {
			return
		}
		if checkTxnRequest(&r, s.cfg.MaxTxnOps) != nil {
			return
		}
		if _, _, err := checkIntervals(r.Success); err != nil {
			return
		}
		if _, _, err := checkIntervals(r.Failure); err != nil {
			return
		}
		before := revision(t, be)
		resp, err := s.doTxn(ctx, &r)
		after := revision(t, be)
		if err != nil {
			if after != before {
				t.Fatalf("failed txn moved the revision %d -> %d: %v", before, after, err)
			}
			return
		}
		if after != before && after != before+1 {
			t.Fatalf("revision jumped %d -> %d", before, after)
		}
		if resp.Header.Revision != after {
			t.Fatalf("header revision %d, store at %d", resp.Header.Revision, after)
		}
		checkInvariants(t, be, after)
	})
}

// FuzzRange sends arbitrary RangeRequests through validation and the
// evaluator: no panics, Count exact and consistent with the keys returned.
func FuzzRange(f *testing.F) {
	for _, r := range []*pb.RangeRequest{
		{Key: []byte("a"), RangeEnd: []byte("z"), Limit: 1},
		{Key: []byte("\x00"), RangeEnd: []byte("\x00"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND},
		{Key: []byte("b"), CountOnly: true, Revision: 2},
		{Key: []byte("a"), RangeEnd: []byte("c"), MinModRevision: 2, KeysOnly: true},
	} {
		b, _ := r.Marshal()
		f.Add(b)
	}
	be, err := embedded.Open(f.TempDir(), embedded.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { be.Close() })
	s := &Server{cfg: Default(), be: be}
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "b", "d"} {
		if _, err := s.doPut(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte(k + "v")}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.RangeRequest
		if err := r.Unmarshal(data); err != nil || checkRangeRequest(&r) != nil {
			return
		}
		resp, err := s.doRange(ctx, &r)
		if err != nil {
			return
		}
		if r.Limit > 0 && int64(len(resp.Kvs)) > r.Limit {
			t.Fatalf("%d kvs over limit %d", len(resp.Kvs), r.Limit)
		}
		if int64(len(resp.Kvs)) > resp.Count {
			t.Fatalf("%d kvs but count %d", len(resp.Kvs), resp.Count)
		}
		if r.CountOnly && len(resp.Kvs) != 0 {
			t.Fatal("count_only returned kvs")
		}
		for _, kv := range resp.Kvs {
			if r.KeysOnly && len(kv.Value) != 0 {
				t.Fatal("keys_only returned a value")
			}
		}
	})
}

func revision(t *testing.T, be backend.Backend) int64 {
	var rev int64
	if err := be.View(context.Background(), func(tx backend.ReadTx) error {
		rev = tx.Revision()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rev
}

func checkInvariants(t *testing.T, be backend.Backend, rev int64) {
	err := be.View(context.Background(), func(tx backend.ReadTx) error {
		res, err := tx.Range(context.Background(), backend.RangeOptions{Key: []byte{0}, End: []byte{0}})
		if err != nil {
			return err
		}
		if res.Count != int64(len(res.KVs)) {
			t.Fatalf("count %d != %d kvs", res.Count, len(res.KVs))
		}
		for i, kv := range res.KVs {
			if i > 0 && bytes.Compare(res.KVs[i-1].Key, kv.Key) >= 0 {
				t.Fatalf("keys out of order")
			}
			if kv.Version < 1 || kv.CreateRevision < 1 || kv.CreateRevision > kv.ModRevision || kv.ModRevision > rev {
				t.Fatalf("bad kv %+v at rev %d", kv, rev)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

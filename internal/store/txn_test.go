package store

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestTxnCompares(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	l, _ := c.Grant(ctx, 60)
	c.Put(ctx, "a", "1")                           // rev 2
	c.Put(ctx, "b", "2", clientv3.WithLease(l.ID)) // rev 3
	c.Put(ctx, "a", "3")                           // rev 4: a version 2

	tests := []struct {
		name string
		cmp  clientv3.Cmp
		want bool
	}{
		{"value equal", clientv3.Compare(clientv3.Value("a"), "=", "3"), true},
		{"value not equal", clientv3.Compare(clientv3.Value("a"), "!=", "3"), false},
		{"value greater", clientv3.Compare(clientv3.Value("a"), ">", "2"), true},
		{"value less", clientv3.Compare(clientv3.Value("a"), "<", "2"), false},
		{"value of missing key", clientv3.Compare(clientv3.Value("zz"), "!=", "x"), false},
		{"version", clientv3.Compare(clientv3.Version("a"), "=", 2), true},
		{"version of missing key", clientv3.Compare(clientv3.Version("zz"), "=", 0), true},
		{"create", clientv3.Compare(clientv3.CreateRevision("a"), "=", 2), true},
		{"create missing", clientv3.Compare(clientv3.CreateRevision("zz"), "=", 0), true},
		{"mod", clientv3.Compare(clientv3.ModRevision("a"), "=", 4), true},
		{"mod less", clientv3.Compare(clientv3.ModRevision("a"), "<", 4), false},
		{"lease", clientv3.Compare(clientv3.LeaseValue("b"), "=", int64(l.ID)), true},
		{"lease none", clientv3.Compare(clientv3.LeaseValue("a"), "=", 0), true},
		{"range all versions > 0", clientv3.Compare(clientv3.Version("a"), ">", 0).WithRange("c"), true},
		{"range all mod > 2", clientv3.Compare(clientv3.ModRevision("a"), ">", 3).WithRange("c"), false},
		{"prefix", clientv3.Compare(clientv3.CreateRevision("a"), ">", 0).WithPrefix(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := c.Txn(ctx).If(tt.cmp).Commit()
			if err != nil {
				t.Fatal(err)
			}
			if r.Succeeded != tt.want {
				t.Fatalf("succeeded = %v, want %v", r.Succeeded, tt.want)
			}
			if r.Header.Revision != 4 {
				t.Fatalf("read-only txn moved the revision: %d", r.Header.Revision)
			}
		})
	}
}

func TestTxnWrites(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "k1", "v1") // rev 2
	c.Put(ctx, "k2", "v2") // rev 3

	// Kubernetes' create: put only if absent, else read.
	r, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision("k3"), "=", 0)).
		Then(clientv3.OpPut("k3", "v3"), clientv3.OpGet("k", clientv3.WithPrefix())).
		Else(clientv3.OpGet("k3")).
		Commit()
	if err != nil || !r.Succeeded || r.Header.Revision != 4 {
		t.Fatalf("txn: %+v %v", r, err)
	}
	if pr := r.Responses[0].GetResponsePut(); pr.Header.Revision != 4 {
		t.Fatalf("put in txn: %+v", pr)
	}
	// The range after the put sees it, at the new revision.
	rr := r.Responses[1].GetResponseRange()
	if rr.Count != 3 || len(rr.Kvs) != 3 || rr.Header.Revision != 4 || rr.Kvs[2].ModRevision != 4 {
		t.Fatalf("range in txn: %+v", rr)
	}
	// Failure branch.
	r, err = c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision("k3"), "=", 0)).
		Then(clientv3.OpPut("k3", "nope")).
		Else(clientv3.OpGet("k3")).
		Commit()
	if err != nil || r.Succeeded || r.Header.Revision != 4 || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "v3" {
		t.Fatalf("else: %+v %v", r, err)
	}
	// Delete and put different keys, delete range with prev kv, limit
	// honoured against the txn's own writes.
	r, err = c.Txn(ctx).Then(
		clientv3.OpDelete("k1", clientv3.WithRange("k3"), clientv3.WithPrevKV()),
		clientv3.OpPut("k4", "v4"),
		clientv3.OpGet("k", clientv3.WithPrefix(), clientv3.WithLimit(1)),
		clientv3.OpGet("k", clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Responses[0].GetResponseDeleteRange(); d.Deleted != 2 || len(d.PrevKvs) != 2 || d.Header.Revision != 5 {
		t.Fatalf("delete in txn: %+v", d)
	}
	if g := r.Responses[2].GetResponseRange(); len(g.Kvs) != 1 || string(g.Kvs[0].Key) != "k3" || !g.More || g.Count != 2 {
		t.Fatalf("limited range in txn: %+v", g)
	}
	if g := r.Responses[3].GetResponseRange(); g.Count != 2 {
		t.Fatalf("count in txn: %+v", g)
	}
	g, _ := c.Get(ctx, "k", clientv3.WithPrefix())
	if g.Count != 2 || g.Header.Revision != 5 || g.Kvs[1].ModRevision != 5 {
		t.Fatalf("after txn: %+v", g)
	}
	// A txn whose only write deletes nothing does not move the revision.
	r, err = c.Txn(ctx).Then(clientv3.OpDelete("absent")).Commit()
	if err != nil || r.Header.Revision != 5 {
		t.Fatalf("no-op delete txn: %+v %v", r, err)
	}
}

func TestTxnNested(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "a", "1")
	// Nested compares see the state before the transaction, as in etcd.
	r, err := c.Txn(ctx).Then(
		clientv3.OpPut("a", "2"),
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("a"), "=", "1")},
			[]clientv3.Op{clientv3.OpPut("b", "then")},
			[]clientv3.Op{clientv3.OpPut("b", "else")},
		),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	inner := r.Responses[1].GetResponseTxn()
	if !inner.Succeeded || inner.Header.Revision != 0 {
		t.Fatalf("inner: %+v", inner)
	}
	g, _ := c.Get(ctx, "b")
	if string(g.Kvs[0].Value) != "then" || g.Kvs[0].ModRevision != 3 {
		t.Fatalf("b: %+v", g.Kvs)
	}
}

func TestTxnDuplicateKeys(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	kv := pb.NewKVClient(c.ActiveConnection())
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	del := func(k, end string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
	}
	txn := func(then, els []*pb.RequestOp) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
	}
	tests := []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"two puts", []*pb.RequestOp{put("a"), put("a")}, true},
		{"put and delete", []*pb.RequestOp{put("a"), del("a", "")}, true},
		{"put in deleted range", []*pb.RequestOp{del("a", "c"), put("b")}, true},
		{"put beside deleted range", []*pb.RequestOp{del("a", "c"), put("c")}, false},
		{"from-key delete does not conflict", []*pb.RequestOp{del("a", "\x00"), put("b")}, false},
		{"nested then/else same key", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, []*pb.RequestOp{put("a")})}, false},
		{"nested and outer", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, nil), put("a")}, true},
		{"two nested", []*pb.RequestOp{txn([]*pb.RequestOp{put("a")}, nil), txn([]*pb.RequestOp{put("a")}, nil)}, true},
		{"nested delete outer put", []*pb.RequestOp{txn([]*pb.RequestOp{del("a", "")}, nil), put("a")}, true},
		{"two deletes", []*pb.RequestOp{del("a", "c"), del("b", "")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kv.Txn(ctx, &pb.TxnRequest{Success: tt.ops})
			if tt.dup != errors.Is(err, rpctypes.ErrGRPCDuplicateKey) || (!tt.dup && err != nil) {
				t.Fatalf("err = %v, want duplicate %v", err, tt.dup)
			}
		})
	}
}

func TestTxnErrorsAbortEverything(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "a", "1")
	_, err := c.Txn(ctx).Then(clientv3.OpPut("b", "2"), clientv3.OpPut("c", "3", clientv3.WithLease(999))).Commit()
	if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Txn(ctx).Then(clientv3.OpPut("b", "2"), clientv3.OpGet("a", clientv3.WithRev(5))).Commit()
	if !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("err = %v", err)
	}
	g, _ := c.Get(ctx, "b")
	if g.Count != 0 || g.Header.Revision != 2 {
		t.Fatalf("aborted txn left changes: %+v", g)
	}
}

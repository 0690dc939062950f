package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestKVPutGetRevisions(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)

	// An empty store is at revision 1 and the first write gets 2, as etcd
	// (kube-apiserver rejects resource version 0).
	if g, err := c.Get(ctx, "a"); err != nil || g.Header.Revision != 1 {
		t.Fatalf("empty store: %+v %v", g, err)
	}
	r1, err := c.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if r1.Header.Revision != 2 || r1.Header.RaftTerm != 1 || r1.Header.ClusterId == 0 || r1.Header.MemberId == 0 {
		t.Fatalf("put header %+v", r1.Header)
	}
	r2, err := c.Put(ctx, "a", "2", clientv3.WithPrevKV())
	if err != nil {
		t.Fatal(err)
	}
	if r2.Header.Revision != 3 || r2.PrevKv == nil || string(r2.PrevKv.Value) != "1" || r2.PrevKv.ModRevision != 2 {
		t.Fatalf("put 2: %+v", r2)
	}
	g, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	kv := g.Kvs[0]
	if string(kv.Value) != "2" || kv.CreateRevision != 2 || kv.ModRevision != 3 || kv.Version != 2 || g.Count != 1 || g.Header.Revision != 3 {
		t.Fatalf("get: %+v", g)
	}
	// Read at a past revision.
	g, err = c.Get(ctx, "a", clientv3.WithRev(2))
	if err != nil || string(g.Kvs[0].Value) != "1" || g.Header.Revision != 3 {
		t.Fatalf("get rev 1: %+v %v", g, err)
	}
	if _, err := c.Get(ctx, "a", clientv3.WithRev(10)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("future rev: %v", err)
	}
	// Delete, recreate: version restarts, create revision moves.
	d, err := c.Delete(ctx, "a", clientv3.WithPrevKV())
	if err != nil || d.Deleted != 1 || d.Header.Revision != 4 || len(d.PrevKvs) != 1 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	// Deleting nothing does not bump the revision.
	d, err = c.Delete(ctx, "nothing")
	if err != nil || d.Deleted != 0 || d.Header.Revision != 4 {
		t.Fatalf("delete nothing: %+v %v", d, err)
	}
	if _, err := c.Put(ctx, "a", "3"); err != nil {
		t.Fatal(err)
	}
	g, _ = c.Get(ctx, "a")
	if kv := g.Kvs[0]; kv.CreateRevision != 5 || kv.Version != 1 {
		t.Fatalf("recreated: %+v", kv)
	}
	// Compaction.
	if _, err := c.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "a", clientv3.WithRev(3)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compacted read: %v", err)
	}
	if _, err := c.Compact(ctx, 4); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("compact again: %v", err)
	}
	if _, err := c.Compact(ctx, 100); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("compact future: %v", err)
	}
}

func TestKVRangeOptions(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	// k0..k9, values descending so value order is the reverse of key order.
	for i := range 10 {
		if _, err := c.Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", 9-i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Put(ctx, "k3", "again") // k3: version 2, mod rev 12

	g, err := c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithLimit(3))
	if err != nil || len(g.Kvs) != 3 || !g.More || g.Count != 10 || string(g.Kvs[2].Key) != "k2" {
		t.Fatalf("limit: %+v %v", g, err)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if g.Count != 10 || len(g.Kvs) != 0 || g.More {
		t.Fatalf("count only: %+v", g)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if len(g.Kvs[0].Value) != 0 || string(g.Kvs[0].Key) != "k0" {
		t.Fatalf("keys only: %+v", g)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend), clientv3.WithLimit(2))
	if string(g.Kvs[0].Key) != "k3" || string(g.Kvs[1].Key) != "k9" || !g.More {
		t.Fatalf("sort by value: %+v", g)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	if string(g.Kvs[0].Key) != "k9" || len(g.Kvs) != 10 {
		t.Fatalf("sort by key desc: %+v", g)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithMinModRev(12))
	if len(g.Kvs) != 1 || string(g.Kvs[0].Key) != "k3" || g.Count != 10 {
		t.Fatalf("min mod rev: %+v", g)
	}
	g, _ = c.Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3))
	if len(g.Kvs) != 2 {
		t.Fatalf("max create rev: %+v", g)
	}
	g, _ = c.Get(ctx, "k5", clientv3.WithFromKey())
	if len(g.Kvs) != 5 {
		t.Fatalf("from key: %d", len(g.Kvs))
	}
	g, _ = c.Get(ctx, "k5", clientv3.WithRange("k7"), clientv3.WithSerializable())
	if len(g.Kvs) != 2 {
		t.Fatalf("range: %d", len(g.Kvs))
	}
	g, err = c.Get(ctx, "k7", clientv3.WithRange("k5"))
	if err != nil || len(g.Kvs) != 0 || g.Count != 0 {
		t.Fatalf("inverted range: %+v %v", g, err)
	}
}

func TestKVPutOptions(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	if _, err := c.Put(ctx, "x", "", clientv3.WithIgnoreValue()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
		t.Fatalf("ignore value on missing key: %v", err)
	}
	if _, err := c.Put(ctx, "x", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("missing lease: %v", err)
	}
	l, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx, "x", "v", clientv3.WithLease(l.ID))
	if _, err := c.Put(ctx, "x", "", clientv3.WithIgnoreValue()); err != nil {
		t.Fatal(err)
	}
	g, _ := c.Get(ctx, "x")
	// ignore_value without ignore_lease detaches the lease, as in etcd.
	if string(g.Kvs[0].Value) != "v" || g.Kvs[0].Lease != 0 || g.Kvs[0].Version != 2 {
		t.Fatalf("ignore value: %+v", g.Kvs[0])
	}
	c.Put(ctx, "x", "v", clientv3.WithLease(l.ID))
	if _, err := c.Put(ctx, "x", "w", clientv3.WithIgnoreLease()); err != nil {
		t.Fatal(err)
	}
	g, _ = c.Get(ctx, "x")
	if string(g.Kvs[0].Value) != "w" || g.Kvs[0].Lease != int64(l.ID) {
		t.Fatalf("ignore lease: %+v", g.Kvs[0])
	}
	// Raw requests the client refuses to build.
	kv := pb.NewKVClient(c.ActiveConnection())
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("x"), Value: []byte("v"), IgnoreValue: true}); !errors.Is(err, rpctypes.ErrGRPCValueProvided) {
		t.Fatalf("value provided: %v", err)
	}
	if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("x"), Lease: 1, IgnoreLease: true}); !errors.Is(err, rpctypes.ErrGRPCLeaseProvided) {
		t.Fatalf("lease provided: %v", err)
	}
}

func TestKVBadRequests(t *testing.T) {
	s := startServer(t, "", func(c *Config) { c.MaxRequestBytes = 1024 })
	c := newClient(t, s)
	ctx := ctxT(t)
	kv := pb.NewKVClient(c.ActiveConnection())
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"range empty key", func() error { _, err := kv.Range(ctx, &pb.RangeRequest{}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"put empty key", func() error { _, err := kv.Put(ctx, &pb.PutRequest{}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"delete empty key", func() error { _, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{}); return err }, rpctypes.ErrGRPCEmptyKey},
		{"bad sort", func() error {
			_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortOrder: 7})
			return err
		}, rpctypes.ErrGRPCInvalidSortOption},
		{"empty txn op", func() error {
			_, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return err
		}, rpctypes.ErrGRPCKeyNotFound},
		{"compare empty key", func() error {
			_, err := kv.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{}}})
			return err
		}, rpctypes.ErrGRPCEmptyKey},
		{"too many ops", func() error {
			ops := make([]*pb.RequestOp, 129)
			for i := range ops {
				ops[i] = &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}
			}
			_, err := kv.Txn(ctx, &pb.TxnRequest{Success: ops})
			return err
		}, rpctypes.ErrGRPCTooManyOps},
		{"request too large", func() error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("big"), Value: []byte(strings.Repeat("x", 2048))})
			return err
		}, rpctypes.ErrGRPCRequestTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// Client-side error translation: the message must match etcd's exactly.
	_, err := c.Put(ctx, "big", strings.Repeat("x", 2048))
	if !errors.Is(err, rpctypes.ErrRequestTooLarge) {
		t.Fatalf("client put too large: %v", err)
	}
	// Over the gRPC limit (MaxRequestBytes + 512 KiB) gRPC itself refuses.
	_, err = c.Put(ctx, "huge", strings.Repeat("x", 600*1024))
	if err == nil {
		t.Fatal("huge put accepted")
	}
}

// BenchmarkPutParallel measures puts from many concurrent clients through
// gRPC (engine without fsync: this is the server's own overhead).
func BenchmarkPutParallel(b *testing.B) {
	s := startServer(b, "")
	c := newClient(b, s)
	ctx := b.Context()
	b.SetParallelism(50)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := c.Put(ctx, fmt.Sprintf("bench/%d", i%1000), "value"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTxnCreate measures Kubernetes' create shape: put if absent.
func BenchmarkTxnCreate(b *testing.B) {
	s := startServer(b, "")
	c := newClient(b, s)
	ctx := b.Context()
	i := 0
	for b.Loop() {
		i++
		k := fmt.Sprintf("/registry/pods/ns/p%d", i)
		if _, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, "v")).Else(clientv3.OpGet(k)).Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeClock is an injectable clock for lease expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLeaseLifecycle(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)

	l, err := c.Grant(ctx, 1) // below the minimum: raised to 2, as etcd
	if err != nil || l.TTL != minLeaseTTL || l.ID == 0 {
		t.Fatalf("grant: %+v %v", l, err)
	}
	l2, err := c.Lease.Grant(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Grant(ctx, maxLeaseTTL+1); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
		t.Fatalf("ttl too large: %v", err)
	}
	c.Put(ctx, "lk1", "v", clientv3.WithLease(l2.ID))
	c.Put(ctx, "lk2", "v", clientv3.WithLease(l2.ID))
	ttl, err := c.TimeToLive(ctx, l2.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 100 || ttl.TTL < 98 || ttl.TTL > 100 || len(ttl.Keys) != 2 {
		t.Fatalf("ttl: %+v %v", ttl, err)
	}
	ka, err := c.KeepAliveOnce(ctx, l2.ID)
	if err != nil || ka.TTL != 100 {
		t.Fatalf("keepalive: %+v %v", ka, err)
	}
	ls, err := c.Leases(ctx)
	if err != nil || len(ls.Leases) != 2 {
		t.Fatalf("leases: %+v %v", ls, err)
	}
	if _, err := c.KeepAliveOnce(ctx, 424242); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keepalive of missing lease: %v", err)
	}
	ttl, err = c.TimeToLive(ctx, 424242)
	if err != nil || ttl.TTL != -1 {
		t.Fatalf("ttl of missing lease: %+v %v", ttl, err)
	}
	// Revoke deletes the keys, with delete events, in one revision.
	wch := c.Watch(ctx, "lk", clientv3.WithPrefix(), clientv3.WithRev(4))
	rr, err := c.Revoke(ctx, l2.ID)
	if err != nil || rr.Header.Revision != 4 {
		t.Fatalf("revoke: %+v %v", rr, err)
	}
	evs := collect(t, wch, 2)
	for _, ev := range evs {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != 4 {
			t.Fatalf("revoke event %+v", ev)
		}
	}
	if _, err := c.Revoke(ctx, l2.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	g, _ := c.Get(ctx, "lk", clientv3.WithPrefix())
	if g.Count != 0 {
		t.Fatalf("keys survived revoke: %+v", g)
	}
}

func TestLeaseGrantWithID(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	lc := newLeaseClient(c)
	r, err := lc.LeaseGrant(ctx, leaseGrantReq(77, 30))
	if err != nil || r.ID != 77 || r.TTL != 30 {
		t.Fatalf("grant 77: %+v %v", r, err)
	}
	if _, err := lc.LeaseGrant(ctx, leaseGrantReq(77, 30)); !errors.Is(err, rpctypes.ErrGRPCLeaseExist) {
		t.Fatalf("grant 77 again: %v", err)
	}
}

func TestLeaseExpiryDeletesKeys(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	s := startServer(t, "", func(c *Config) { c.Now = clk.Now })
	c := newClient(t, s)
	ctx := ctxT(t)
	l, err := c.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx, "e1", "v", clientv3.WithLease(l.ID)) // rev 2
	c.Put(ctx, "e2", "v", clientv3.WithLease(l.ID)) // rev 3
	c.Put(ctx, "e3", "v")                           // rev 4, no lease
	wch := c.Watch(ctx, "e", clientv3.WithPrefix(), clientv3.WithRev(5), clientv3.WithPrevKV())
	clk.Advance(11 * time.Second)
	evs := collect(t, wch, 2)
	for i, ev := range evs {
		if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != 5 || ev.PrevKv == nil || ev.PrevKv.Lease != int64(l.ID) {
			t.Fatalf("expiry event %d: %+v", i, ev)
		}
	}
	g, _ := c.Get(ctx, "e", clientv3.WithPrefix())
	if g.Count != 1 || string(g.Kvs[0].Key) != "e3" {
		t.Fatalf("after expiry: %+v", g)
	}
	ttl, _ := c.TimeToLive(ctx, l.ID)
	if ttl.TTL != -1 {
		t.Fatalf("expired lease still there: %+v", ttl)
	}
}

func TestLeaseSurvivesRestart(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	dir := t.TempDir()
	s := startServer(t, dir, func(c *Config) { c.Now = clk.Now })
	c := newClient(t, s)
	ctx := ctxT(t)
	l, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx, "r", "v", clientv3.WithLease(l.ID))
	clk.Advance(20 * time.Second) // 10s left
	c.Close()
	s.stop(t)

	s2 := startServer(t, dir, func(c *Config) { c.Now = clk.Now })
	c2 := newClient(t, s2)
	ttl, err := c2.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	// The clock restarts at now+TTL, as etcd does.
	if ttl.GrantedTTL != 30 || ttl.TTL < 29 || len(ttl.Keys) != 1 {
		t.Fatalf("after restart: %+v", ttl)
	}
	g, _ := c2.Get(ctx, "r")
	if g.Count != 1 || g.Kvs[0].Lease != int64(l.ID) {
		t.Fatalf("key after restart: %+v", g)
	}
}

func newLeaseClient(c *clientv3.Client) pb.LeaseClient {
	return pb.NewLeaseClient(c.ActiveConnection())
}

func leaseGrantReq(id, ttl int64) *pb.LeaseGrantRequest {
	return &pb.LeaseGrantRequest{ID: id, TTL: ttl}
}

package store

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

const (
	// maxLeaseTTL is etcd's largest TTL (lease.MaxLeaseTTL).
	maxLeaseTTL = 9000000000
	// minLeaseTTL is etcd's minimum with its default election timeout:
	// ceil(1.5 * election ticks * heartbeat) = 2 seconds.
	minLeaseTTL = 2
	// expiryInterval is how often the expiry loop looks for expired
	// leases (etcd checks every 500ms).
	expiryInterval = 500 * time.Millisecond
	// revokesPerTick bounds revocations per check (etcd: 1000/s).
	revokesPerTick = 500
	// revokeParallelism lets the engine batch concurrent revocations.
	revokeParallelism = 16
	// grantIDAttempts bounds the random lease IDs one grant tries.
	grantIDAttempts = 16
)

// lessor manages leases. Every lease is a backend record, so grants,
// keep-alives and revocations survive restarts and are seen by every store
// instance sharing the engine.
type lessor struct {
	s     *Server
	count atomic.Int64 // leases seen by the last expiry check (metrics)
}

func newLessor(s *Server) *lessor { return &lessor{s: s} }

func (l *lessor) now() time.Time { return l.s.cfg.now() }

func (l *lessor) expiry(ttl int64) time.Time {
	return l.now().Add(time.Duration(ttl) * time.Second)
}

// refreshAll restarts every lease's clock at now+TTL (etcd does this when
// a member becomes leader, e.g. after a restart).
func (l *lessor) refreshAll(ctx context.Context) error {
	return l.s.be.Update(ctx, func(tx backend.WriteTx) error {
		leases, err := tx.Leases(ctx)
		if err != nil {
			return err
		}
		for _, ls := range leases {
			ls.Expiry = l.expiry(ls.TTL)
			if err := tx.PutLease(ctx, ls); err != nil {
				return err
			}
		}
		l.count.Store(int64(len(leases)))
		return nil
	})
}

func (l *lessor) grant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.TTL > maxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	ttl := max(r.TTL, minLeaseTTL)
	var id, rev int64
	err := l.s.be.Update(ctx, func(tx backend.WriteTx) error {
		id = r.ID
		for attempt := 0; id == 0; attempt++ {
			// A random ID is taken with negligible odds; a transaction
			// that keeps answering "taken" (the SQL engines' probe runs
			// answer every lease exists) must not loop forever.
			if attempt == grantIDAttempts {
				return errors.New("no unused lease ID found")
			}
			id = rand.Int64() // positive, as etcd's generated IDs
			if _, err := tx.Lease(ctx, id); err == nil {
				id = 0
			} else if !errors.Is(err, backend.ErrLeaseNotFound) {
				return err
			}
		}
		if r.ID != 0 {
			if _, err := tx.Lease(ctx, id); err == nil {
				return rpctypes.ErrGRPCLeaseExist
			} else if !errors.Is(err, backend.ErrLeaseNotFound) {
				return err
			}
		}
		rev = tx.Revision()
		return tx.PutLease(ctx, backend.Lease{ID: id, TTL: ttl, Expiry: l.expiry(ttl)})
	})
	if err != nil {
		return nil, toGRPCError(err)
	}
	l.count.Add(1)
	return &pb.LeaseGrantResponse{Header: l.s.header(rev), ID: id, TTL: ttl}, nil
}

// revoke deletes a lease and its keys in one transaction. With
// onlyIfExpired it first rechecks, inside the transaction, that the lease
// is still expired (another instance or a keep-alive may have won).
func (l *lessor) revoke(ctx context.Context, id int64, onlyIfExpired bool) (rev int64, revoked bool, err error) {
	err = l.s.be.Update(ctx, func(tx backend.WriteTx) error {
		revoked = false
		ls, err := tx.Lease(ctx, id)
		if err != nil {
			return err
		}
		if onlyIfExpired && ls.Expiry.After(l.now()) {
			rev = tx.Revision()
			return nil
		}
		keys, err := tx.LeaseKeys(ctx, id)
		if err != nil {
			return err
		}
		e := newEvaluator(tx, tx)
		for _, k := range keys {
			kv, err := e.get(ctx, k)
			if err != nil {
				return err
			}
			if kv == nil || kv.Lease != id {
				continue
			}
			e.record(backend.EventDelete, backend.KeyValue{Key: kv.Key, ModRevision: e.base + 1}, kv)
		}
		if err := e.commit(ctx); err != nil {
			return err
		}
		if err := tx.DeleteLease(ctx, id); err != nil {
			return err
		}
		rev, revoked = e.rev(), true
		return nil
	})
	return rev, revoked, err
}

// renew restarts a lease's clock; it returns the granted TTL, or
// ErrLeaseNotFound for a missing or already expired lease.
func (l *lessor) renew(ctx context.Context, id int64) (int64, error) {
	var ttl int64
	err := l.s.be.Update(ctx, func(tx backend.WriteTx) error {
		ls, err := tx.Lease(ctx, id)
		if err != nil {
			return err
		}
		if !ls.Expiry.IsZero() && !ls.Expiry.After(l.now()) {
			return backend.ErrLeaseNotFound // expired, waiting for revocation
		}
		ls.Expiry = l.expiry(ls.TTL)
		ttl = ls.TTL
		return tx.PutLease(ctx, ls)
	})
	return ttl, err
}

// run revokes expired leases until ctx ends.
func (l *lessor) run(ctx context.Context) {
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.expireOnce(ctx)
		}
	}
}

// expireOnce revokes the leases that are expired now.
func (l *lessor) expireOnce(ctx context.Context) {
	var leases []backend.Lease
	if err := l.s.be.View(ctx, func(tx backend.ReadTx) error {
		var err error
		leases, err = tx.Leases(ctx)
		return err
	}); err != nil {
		if ctx.Err() == nil {
			l.s.log.Warn("listing leases for expiry", "err", err)
		}
		return
	}
	l.count.Store(int64(len(leases)))
	now := l.now()
	var expired []int64
	for _, ls := range leases {
		if !ls.Expiry.IsZero() && !ls.Expiry.After(now) {
			expired = append(expired, ls.ID)
			if len(expired) == revokesPerTick {
				break
			}
		}
	}
	if len(expired) == 0 {
		return
	}
	sem := make(chan struct{}, revokeParallelism)
	var wg sync.WaitGroup
	for _, id := range expired {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, revoked, err := l.revoke(ctx, id, true)
			switch {
			case err != nil && !errors.Is(err, backend.ErrLeaseNotFound) && ctx.Err() == nil:
				l.s.log.Warn("revoking expired lease", "lease", id, "err", err)
			case revoked:
				l.count.Add(-1)
				l.s.metrics.leasesExpired.Inc()
				l.s.log.Debug("lease expired", "lease", id)
			}
		}()
	}
	wg.Wait()
}

// leaseServer implements etcd's Lease service.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (ls *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return ls.s.lessor.grant(ctx, r)
}

func (ls *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	rev, _, err := ls.s.lessor.revoke(ctx, r.ID, false)
	if err != nil {
		return nil, toGRPCError(err)
	}
	ls.s.lessor.count.Add(-1)
	return &pb.LeaseRevokeResponse{Header: ls.s.header(rev)}, nil
}

func (ls *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var (
		lease backend.Lease
		keys  [][]byte
		rev   int64
	)
	err := ls.s.be.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		var err error
		if lease, err = tx.Lease(ctx, r.ID); err != nil {
			return err
		}
		if r.Keys {
			keys, err = tx.LeaseKeys(ctx, r.ID)
		}
		return err
	})
	if errors.Is(err, backend.ErrLeaseNotFound) {
		return &pb.LeaseTimeToLiveResponse{Header: ls.s.header(rev), ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPCError(err)
	}
	remaining := int64(maxLeaseTTL)
	if !lease.Expiry.IsZero() {
		remaining = int64(lease.Expiry.Sub(ls.s.cfg.now()).Seconds())
	}
	return &pb.LeaseTimeToLiveResponse{Header: ls.s.header(rev), ID: r.ID, TTL: remaining, GrantedTTL: lease.TTL, Keys: keys}, nil
}

func (ls *leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	var (
		leases []backend.Lease
		rev    int64
	)
	err := ls.s.be.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		var err error
		leases, err = tx.Leases(ctx)
		return err
	})
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.LeaseLeasesResponse{Header: ls.s.header(rev), Leases: make([]*pb.LeaseStatus, 0, len(leases))}
	for _, l := range leases {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
	}
	return resp, nil
}

func (ls *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	errc := make(chan error, 1)
	go func() { errc <- ls.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-ls.s.ctx.Done():
		return rpctypes.ErrGRPCStopped
	}
}

func (ls *leaseServer) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// The header is taken before the renewal, as etcd does, so its
		// revision is never newer than the keep-alive.
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: ls.s.header(0)}
		ttl, err := ls.s.lessor.renew(ctx, req.ID)
		switch {
		case errors.Is(err, backend.ErrLeaseNotFound):
			ttl = 0
		case err != nil:
			return toGRPCError(err)
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

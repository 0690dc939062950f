package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// recv waits for the next watch response or fails after a timeout.
func recv(t *testing.T, ch clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a watch response")
	}
	return clientv3.WatchResponse{}
}

// collect reads events until n have arrived.
func collect(t *testing.T, ch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	for len(evs) < n {
		r := recv(t, ch)
		if err := r.Err(); err != nil {
			t.Fatalf("watch error: %v", err)
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func TestWatchEvents(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	wch := c.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	if r := recv(t, wch); !r.Created {
		t.Fatalf("first response not created: %+v", r)
	}
	c.Put(ctx, "k1", "a")
	c.Put(ctx, "other", "x")
	c.Put(ctx, "k1", "b")
	c.Delete(ctx, "k1")
	evs := collect(t, wch, 3)
	if evs[0].Type != mvccpb.PUT || !evs[0].IsCreate() || evs[0].PrevKv != nil || evs[0].Kv.ModRevision != 2 {
		t.Fatalf("ev0 %+v", evs[0])
	}
	if !evs[1].IsModify() || string(evs[1].PrevKv.Value) != "a" || evs[1].Kv.Version != 2 {
		t.Fatalf("ev1 %+v", evs[1])
	}
	if evs[2].Type != mvccpb.DELETE || evs[2].Kv.ModRevision != 5 || string(evs[2].PrevKv.Value) != "b" {
		t.Fatalf("ev2 %+v", evs[2])
	}
}

func TestWatchHistoryFiltersAndCancel(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	for i := range 5 {
		c.Put(ctx, "h", fmt.Sprint(i)) // revs 2..6
	}
	c.Delete(ctx, "h") // rev 7
	wch := c.Watch(ctx, "h", clientv3.WithRev(3))
	evs := collect(t, wch, 5)
	for i, ev := range evs {
		if ev.Kv.ModRevision != int64(i+3) {
			t.Fatalf("history event %d: rev %d", i, ev.Kv.ModRevision)
		}
	}
	// Filters: only deletes.
	nodel := c.Watch(ctx, "h", clientv3.WithRev(1), clientv3.WithFilterPut())
	evs = collect(t, nodel, 1)
	if evs[0].Type != mvccpb.DELETE {
		t.Fatalf("filter put: %+v", evs[0])
	}
	// Cancel by closing the context.
	cctx, cancel := context.WithCancel(ctx)
	w2 := c.Watch(cctx, "h")
	cancel()
	for range w2 {
	}
}

func TestWatchCompacted(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	for i := range 5 {
		c.Put(ctx, "c", fmt.Sprint(i))
	}
	if _, err := c.Compact(ctx, 5); err != nil {
		t.Fatal(err)
	}
	r := recv(t, c.Watch(ctx, "c", clientv3.WithRev(3)))
	if r.CompactRevision != 5 || !r.Canceled {
		t.Fatalf("compacted watch: %+v", r)
	}
	// Starting at the compaction point is fine.
	evs := collect(t, c.Watch(ctx, "c", clientv3.WithRev(5)), 2)
	if evs[0].Kv.ModRevision != 5 {
		t.Fatalf("watch at compact rev: %+v", evs[0])
	}
}

func TestWatchRawProtocol(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "p", "1") // rev 2
	ws, err := pb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() *pb.WatchResponse {
		t.Helper()
		r, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	create := func(cr *pb.WatchCreateRequest) {
		t.Helper()
		if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
			t.Fatal(err)
		}
	}
	// Server-chosen IDs start at 0; a client-chosen ID is kept.
	create(&pb.WatchCreateRequest{Key: []byte("p")})
	if r := next(); !r.Created || r.WatchId != 0 || r.Header.Revision != 2 {
		t.Fatalf("create: %+v", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("p"), WatchId: 7})
	if r := next(); !r.Created || r.WatchId != 7 {
		t.Fatalf("create 7: %+v", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("p"), WatchId: 7})
	if r := next(); !r.Canceled || r.WatchId != -1 || r.CancelReason != errDuplicateWatchID {
		t.Fatalf("duplicate id: %+v", r)
	}
	create(&pb.WatchCreateRequest{Key: []byte("z"), RangeEnd: []byte("a")})
	if r := next(); !r.Canceled || r.CancelReason != errEmptyWatcherRange {
		t.Fatalf("empty range: %+v", r)
	}
	// Progress request: answered with watch ID -1 at the current revision,
	// after every earlier event.
	c.Put(ctx, "p", "2") // rev 3
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for {
		r := next()
		if len(r.Events) > 0 {
			if r.Events[0].Kv.ModRevision != 3 {
				t.Fatalf("event %+v", r)
			}
			seen[r.WatchId] = true
			continue
		}
		if r.WatchId != -1 || r.Header.Revision < 3 {
			t.Fatalf("progress: %+v", r)
		}
		break
	}
	if !seen[0] || !seen[7] {
		t.Fatalf("progress arrived before the events: %v", seen)
	}
	// Cancel.
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}}); err != nil {
		t.Fatal(err)
	}
	if r := next(); !r.Canceled || r.WatchId != 7 {
		t.Fatalf("cancel: %+v", r)
	}
	// Negative start revision.
	create(&pb.WatchCreateRequest{Key: []byte("p"), StartRevision: -1})
	if r := next(); !r.Canceled || !r.Created || r.WatchId != -1 {
		t.Fatalf("negative start: %+v", r)
	}
}

func TestWatchProgressNotifyPeriodic(t *testing.T) {
	s := startServer(t, "", func(c *Config) { c.WatchProgressNotifyInterval = 50 * time.Millisecond })
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "a", "1")
	wch := c.Watch(ctx, "a", clientv3.WithProgressNotify())
	for {
		r := recv(t, wch)
		if r.IsProgressNotify() {
			if r.Header.Revision != 2 {
				t.Fatalf("progress revision %d", r.Header.Revision)
			}
			return
		}
	}
}

func TestWatchFragment(t *testing.T) {
	s := startServer(t, "", func(c *Config) { c.MaxRequestBytes = 100 << 10 })
	c := newClient(t, s)
	ctx := ctxT(t)
	// 8 puts of 90 KiB: together more than MaxRequestBytes + 512 KiB, the
	// fragmenting threshold (etcd's).
	for i := range 8 {
		if _, err := c.Put(ctx, fmt.Sprintf("f%d", i), string(make([]byte, 90<<10))); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := pb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("f"), RangeEnd: []byte("g"), StartRevision: 1, Fragment: true,
	}}})
	n, frags := 0, 0
	for n < 8 {
		r, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Fragment {
			frags++
		}
		n += len(r.Events)
	}
	if frags == 0 {
		t.Fatal("no fragmented responses")
	}
}

// TestWatchSlowWatcherCatchesUp uses a tiny ring so that a watcher starting
// far behind must catch up from backend.Events, in order, without loss.
func TestWatchSlowWatcherCatchesUp(t *testing.T) {
	s := startServer(t, "", func(c *Config) { c.WatchRingEvents = 4 })
	c := newClient(t, s)
	ctx := ctxT(t)
	const n = 300
	for i := range n {
		if _, err := c.Put(ctx, fmt.Sprintf("s%03d", i%7), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the hub to have trimmed its ring past revision 1.
	waitFor(t, func() bool { return s.hub.revision() >= n+1 })
	wch := c.Watch(ctx, "s", clientv3.WithPrefix(), clientv3.WithRev(1))
	// More writes while it catches up.
	go func() {
		for i := n; i < n+50; i++ {
			c.Put(ctx, fmt.Sprintf("s%03d", i%7), fmt.Sprint(i))
		}
	}()
	evs := collect(t, wch, n+50)
	for i, ev := range evs {
		if ev.Kv.ModRevision != int64(i+2) || string(ev.Kv.Value) != fmt.Sprint(i) {
			t.Fatalf("event %d: rev %d value %s", i, ev.Kv.ModRevision, ev.Kv.Value)
		}
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		<-tick.C
	}
}

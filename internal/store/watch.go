package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

const (
	// ringMaxBytes caps the memory the hub's ring of recent events holds;
	// watchers behind it catch up from the engine (Backend.Events).
	ringMaxBytes = 16 << 20
	// readChunk is how many events one catch-up step hands a watcher.
	readChunk = 1000
	// catchupRevisions is how many revisions one read from backend.Events
	// spans when a watcher is behind the ring.
	catchupRevisions = 1000

	// etcd's watch errors, as their CancelReason strings.
	errEmptyWatcherRange = "mvcc: watcher range is empty"
	errDuplicateWatchID  = "mvcc: duplicate watch ID provided on the WatchStream"
	invalidWatchID       = -1
)

// watchHub holds the store's one subscription to backend.Watch and a ring
// of the most recent events. Watchers pull from it: each keeps the next
// revision it must see, and reads the ring (or backend.Events if the ring
// has moved past it).
type watchHub struct {
	be       backend.Backend
	log      *slog.Logger
	maxCount int

	mu     sync.RWMutex
	ring   []backend.Event // events with floor < revision <= rev, in order
	bytes  int
	floor  int64         // events at or below floor are not in ring
	rev    int64         // every event up to rev has been received
	notify chan struct{} // closed (and replaced) whenever rev advances

	watchers atomic.Int64
}

func newWatchHub(be backend.Backend, maxCount int, log *slog.Logger) *watchHub {
	return &watchHub{be: be, log: log, maxCount: maxCount, notify: make(chan struct{})}
}

// start reads the current revision and subscribes from there.
func (h *watchHub) start(ctx context.Context, wg *sync.WaitGroup) error {
	var rev int64
	if err := h.be.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		return nil
	}); err != nil {
		return err
	}
	h.floor, h.rev = rev, rev
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.run(ctx)
	}()
	return nil
}

// run keeps the subscription alive, re-subscribing from the last revision
// seen when the feed breaks.
func (h *watchHub) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		err := h.be.Watch(ctx, h.revision(), h.deliver)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, backend.ErrCompacted) {
			// The history we missed is gone: skip ahead. Watchers behind
			// the new floor read backend.Events, get ErrCompacted and are
			// cancelled with the compact revision.
			h.skipTo(ctx)
		}
		h.log.Warn("watch feed broke; re-subscribing", "after_revision", h.revision(), "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (h *watchHub) skipTo(ctx context.Context) {
	var rev int64
	if err := h.be.View(ctx, func(tx backend.ReadTx) error {
		rev = tx.Revision()
		return nil
	}); err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev > h.rev {
		h.ring, h.bytes = nil, 0
		h.floor, h.rev = rev, rev
		close(h.notify)
		h.notify = make(chan struct{})
	}
}

func eventBytes(ev *backend.Event) int {
	n := 64 + len(ev.KV.Key) + len(ev.KV.Value)
	if ev.PrevKV != nil {
		n += 64 + len(ev.PrevKV.Key) + len(ev.PrevKV.Value)
	}
	return n
}

// deliver is the backend.Watch callback: append and wake the watchers.
func (h *watchHub) deliver(evs []backend.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	advanced := false
	for i := range evs {
		ev := evs[i]
		if ev.KV.ModRevision <= h.rev && !(advanced && ev.KV.ModRevision == h.rev) {
			continue // already seen (re-subscription overlap)
		}
		h.ring = append(h.ring, ev)
		h.bytes += eventBytes(&ev)
		h.rev = ev.KV.ModRevision
		advanced = true
	}
	if !advanced {
		return
	}
	if len(h.ring) > h.maxCount || h.bytes > ringMaxBytes {
		h.trim()
	}
	close(h.notify)
	h.notify = make(chan struct{})
}

// trim drops the oldest events, whole revisions at a time, down to half
// the limits.
func (h *watchHub) trim() {
	i, b := 0, h.bytes
	for i < len(h.ring) && (len(h.ring)-i > h.maxCount/2 || b > ringMaxBytes/2) {
		b -= eventBytes(&h.ring[i])
		i++
	}
	for i < len(h.ring) && i > 0 && h.ring[i].KV.ModRevision == h.ring[i-1].KV.ModRevision {
		b -= eventBytes(&h.ring[i])
		i++
	}
	if i == 0 {
		return
	}
	h.floor = h.ring[i-1].KV.ModRevision
	h.ring = slices.Clone(h.ring[i:])
	h.bytes = b
}

func (h *watchHub) revision() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rev
}

// state returns the hub revision and a channel closed when it advances.
func (h *watchHub) state() (int64, <-chan struct{}) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rev, h.notify
}

// read returns events with revision >= from, in order, ending at a
// revision boundary upto (upto < from when there is nothing new). The
// returned slice must not be modified.
func (h *watchHub) read(ctx context.Context, from int64) (evs []backend.Event, upto int64, err error) {
	h.mu.RLock()
	rev, floor := h.rev, h.floor
	if from > rev {
		h.mu.RUnlock()
		return nil, from - 1, nil
	}
	if from > floor {
		ring := h.ring
		h.mu.RUnlock()
		i := sort.Search(len(ring), func(i int) bool { return ring[i].KV.ModRevision >= from })
		j := min(i+readChunk, len(ring))
		for j < len(ring) && j > i && ring[j].KV.ModRevision == ring[j-1].KV.ModRevision {
			j++
		}
		if j == len(ring) {
			return ring[i:j], rev, nil
		}
		return ring[i:j], ring[j-1].KV.ModRevision, nil
	}
	h.mu.RUnlock()
	to := min(floor, from+catchupRevisions-1)
	evs, err = h.be.Events(ctx, from, to)
	if err != nil {
		return nil, 0, err
	}
	return evs, to, nil
}

// watchServer implements etcd's Watch service.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// watcher is one watch on a stream.
type watcher struct {
	id              int64
	key, end        []byte // end nil: single key; empty: every key >= key
	nextRev         int64  // the next revision this watcher must see
	prevKV          bool
	fragment        bool
	progressNotify  bool
	progressDue     bool // no events sent since the last periodic tick
	noPut, noDelete bool
}

func (w *watcher) matches(ev *backend.Event) bool {
	if (ev.Type == backend.EventPut && w.noPut) || (ev.Type == backend.EventDelete && w.noDelete) {
		return false
	}
	k := ev.KV.Key
	switch {
	case w.end == nil:
		return bytes.Equal(k, w.key)
	case len(w.end) == 0:
		return bytes.Compare(k, w.key) >= 0
	default:
		return bytes.Compare(k, w.key) >= 0 && bytes.Compare(k, w.end) < 0
	}
}

// watchStream is one Watch RPC: a receive goroutine queues requests, the
// handler goroutine does everything else in order.
type watchStream struct {
	s      *Server
	hub    *watchHub
	stream pb.Watch_WatchServer

	mu      sync.Mutex
	reqs    []*pb.WatchRequest
	recvErr error
	wake    chan struct{}

	watchers        map[int64]*watcher
	nextID          int64
	progressPending bool
}

func (ws *watchServer) Watch(stream pb.Watch_WatchServer) error {
	st := &watchStream{
		s:        ws.s,
		hub:      ws.s.hub,
		stream:   stream,
		wake:     make(chan struct{}, 1),
		watchers: make(map[int64]*watcher),
	}
	defer func() { st.hub.watchers.Add(-int64(len(st.watchers))) }()
	go st.recvLoop()
	return st.sendLoop()
}

func (st *watchStream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *watchStream) recvLoop() {
	for {
		req, err := st.stream.Recv()
		st.mu.Lock()
		if err != nil {
			st.recvErr = err
			st.mu.Unlock()
			st.signal()
			return
		}
		st.reqs = append(st.reqs, req)
		st.mu.Unlock()
		st.signal()
	}
}

func (st *watchStream) sendLoop() error {
	ctx := st.stream.Context()
	ticker := time.NewTicker(st.s.cfg.WatchProgressNotifyInterval)
	defer ticker.Stop()
	for {
		hubRev, notify := st.hub.state()
		st.mu.Lock()
		reqs, recvErr := st.reqs, st.recvErr
		st.reqs = nil
		st.mu.Unlock()
		for _, req := range reqs {
			if err := st.handle(ctx, req); err != nil {
				return err
			}
		}
		if recvErr != nil {
			if errors.Is(recvErr, io.EOF) {
				return nil
			}
			return recvErr
		}
		if err := st.catchUp(ctx, hubRev); err != nil {
			return err
		}
		if st.progressPending {
			if len(st.watchers) == 0 {
				st.progressPending = false // etcd sends nothing without watchers
			} else if st.allSynced(hubRev) {
				st.progressPending = false
				if err := st.send(&pb.WatchResponse{Header: st.s.header(hubRev), WatchId: invalidWatchID}, false); err != nil {
					return err
				}
			}
		}
		select {
		case <-notify:
		case <-st.wake:
		case <-ticker.C:
			if err := st.periodicProgress(hubRev); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-st.s.ctx.Done():
			return rpctypes.ErrGRPCStopped
		}
	}
}

func (st *watchStream) allSynced(hubRev int64) bool {
	for _, w := range st.watchers {
		if w.nextRev != hubRev+1 {
			return false
		}
	}
	return true
}

func (st *watchStream) periodicProgress(hubRev int64) error {
	for _, id := range st.ids() {
		w := st.watchers[id]
		if !w.progressNotify {
			continue
		}
		if w.progressDue && w.nextRev == hubRev+1 {
			if err := st.send(&pb.WatchResponse{Header: st.s.header(hubRev), WatchId: w.id}, false); err != nil {
				return err
			}
		}
		w.progressDue = true
	}
	return nil
}

func (st *watchStream) ids() []int64 {
	ids := make([]int64, 0, len(st.watchers))
	for id := range st.watchers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (st *watchStream) send(r *pb.WatchResponse, fragment bool) error {
	if !fragment {
		return st.stream.Send(r)
	}
	return sendFragments(r, st.s.cfg.MaxRequestBytes+grpcOverheadBytes, st.stream.Send)
}

// sendFragments splits a large response across several messages, as
// etcd does for watchers created with fragment.
func sendFragments(r *pb.WatchResponse, limit int, send func(*pb.WatchResponse) error) error {
	if r.Size() < limit || len(r.Events) < 2 {
		return send(r)
	}
	events := r.Events
	for len(events) > 0 {
		cur := *r
		cur.Events = nil
		cur.Fragment = true
		n := 0
		for _, ev := range events {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && cur.Size() >= limit {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			n++
		}
		events = events[n:]
		if len(events) == 0 {
			cur.Fragment = false
		}
		if err := send(&cur); err != nil {
			return err
		}
	}
	return nil
}

func (st *watchStream) handle(ctx context.Context, req *pb.WatchRequest) error {
	switch v := req.RequestUnion.(type) {
	case *pb.WatchRequest_CreateRequest:
		if v.CreateRequest != nil {
			return st.create(ctx, v.CreateRequest)
		}
	case *pb.WatchRequest_CancelRequest:
		if v.CancelRequest == nil {
			return nil
		}
		id := v.CancelRequest.WatchId
		if _, ok := st.watchers[id]; !ok {
			return nil // etcd does not answer unknown IDs
		}
		delete(st.watchers, id)
		st.hub.watchers.Add(-1)
		return st.send(&pb.WatchResponse{Header: st.s.header(st.hub.revision()), WatchId: id, Canceled: true}, false)
	case *pb.WatchRequest_ProgressRequest:
		if v.ProgressRequest != nil {
			st.progressPending = true
		}
	}
	return nil
}

func (st *watchStream) create(ctx context.Context, c *pb.WatchCreateRequest) error {
	var cur, compacted int64
	if err := st.s.be.View(ctx, func(tx backend.ReadTx) error {
		cur, compacted = tx.Revision(), tx.CompactRevision()
		st.s.noteCompaction(compacted)
		return nil
	}); err != nil {
		return toGRPCError(err)
	}
	reject := func(reason string) error {
		return st.send(&pb.WatchResponse{Header: st.s.header(cur), WatchId: invalidWatchID, Created: true, Canceled: true, CancelReason: reason}, false)
	}
	if c.StartRevision < 0 {
		return reject(rpctypes.ErrCompacted.Error())
	}
	key := c.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	var end []byte
	switch {
	case len(c.RangeEnd) == 0:
		end = nil
	case len(c.RangeEnd) == 1 && c.RangeEnd[0] == 0:
		end = []byte{}
	default:
		end = c.RangeEnd
		if bytes.Compare(key, end) >= 0 {
			return reject(errEmptyWatcherRange)
		}
	}
	id := c.WatchId
	if id == 0 { // clientv3.AutoWatchID: the server picks
		for st.watchers[st.nextID] != nil {
			st.nextID++
		}
		id = st.nextID
		st.nextID++
	} else if _, ok := st.watchers[id]; ok {
		return reject(errDuplicateWatchID)
	}
	w := &watcher{
		id:             id,
		key:            key,
		end:            end,
		nextRev:        c.StartRevision,
		prevKV:         c.PrevKv,
		fragment:       c.Fragment,
		progressNotify: c.ProgressNotify,
	}
	if w.nextRev == 0 {
		w.nextRev = cur + 1
	}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.noDelete = true
		}
	}
	if err := st.send(&pb.WatchResponse{Header: st.s.header(cur), WatchId: id, Created: true}, false); err != nil {
		return err
	}
	if w.nextRev < compacted {
		return st.send(&pb.WatchResponse{Header: st.s.header(cur), WatchId: id, CompactRevision: compacted, Canceled: true}, false)
	}
	st.watchers[id] = w
	st.hub.watchers.Add(1)
	return nil
}

// catchUp moves every watcher up to hubRev, sending what matches.
func (st *watchStream) catchUp(ctx context.Context, hubRev int64) error {
	for _, id := range st.ids() {
		w := st.watchers[id]
		for w.nextRev <= hubRev {
			evs, upto, err := st.hub.read(ctx, w.nextRev)
			if errors.Is(err, backend.ErrCompacted) {
				if err := st.cancelCompacted(ctx, w); err != nil {
					return err
				}
				break
			}
			if err != nil {
				return toGRPCError(err)
			}
			if upto < w.nextRev {
				break
			}
			var out []*mvccpb.Event
			for i := range evs {
				ev := &evs[i]
				if ev.KV.ModRevision < w.nextRev || ev.KV.ModRevision > upto || !w.matches(ev) {
					continue
				}
				// etcd reads PrevKV at revision-1; at or below the
				// compaction point that read fails and the event goes
				// out without it.
				out = append(out, toPBEvent(ev, w.prevKV && ev.KV.ModRevision > st.s.compactRev.Load()))
			}
			w.nextRev = upto + 1
			if len(out) == 0 {
				continue
			}
			w.progressDue = false
			r := &pb.WatchResponse{Header: st.s.header(max(hubRev, upto)), WatchId: w.id, Events: out}
			if err := st.send(r, w.fragment); err != nil {
				return err
			}
			st.s.metrics.eventsSent.Add(float64(len(out)))
		}
	}
	return nil
}

func (st *watchStream) cancelCompacted(ctx context.Context, w *watcher) error {
	var compacted int64
	if err := st.s.be.View(ctx, func(tx backend.ReadTx) error {
		compacted = tx.CompactRevision()
		return nil
	}); err != nil {
		return toGRPCError(err)
	}
	st.s.noteCompaction(compacted)
	delete(st.watchers, w.id)
	st.hub.watchers.Add(-1)
	st.s.log.Debug("watcher fell behind compaction; cancelled", "watch_id", w.id, "next_revision", w.nextRev, "compact_revision", compacted)
	return st.send(&pb.WatchResponse{Header: st.s.header(st.hub.revision()), WatchId: w.id, CompactRevision: compacted, Canceled: true}, false)
}

func toPBEvent(ev *backend.Event, prevKV bool) *mvccpb.Event {
	out := &mvccpb.Event{Kv: toPB(ev.KV)}
	if ev.Type == backend.EventDelete {
		out.Type = mvccpb.DELETE
	}
	if prevKV && ev.PrevKV != nil {
		out.PrevKv = toPB(*ev.PrevKV)
	}
	return out
}

// noteCompaction records that history is compacted at least to rev.
func (s *Server) noteCompaction(rev int64) {
	for {
		cur := s.compactRev.Load()
		if rev <= cur || s.compactRev.CompareAndSwap(cur, rev) {
			return
		}
	}
}

package difftest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// run is one execution of the script against one server.
type run struct {
	t        *testing.T
	ctx      context.Context
	c        *clientv3.Client
	leaseAPI pb.LeaseClient
	n        *normalizer
	tr       *transcript
}

func newRun(t *testing.T, endpoint string) *run {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()}, //nolint:staticcheck // fail fast if the server is not up
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("connecting to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &run{
		t:        t,
		ctx:      t.Context(),
		c:        c,
		leaseAPI: pb.NewLeaseClient(c.ActiveConnection()),
		n:        newNormalizer(),
		tr:       &transcript{},
	}
}

// at records the response (or error) of one step:
//
//	r.at("put /d/a")(r.c.Put(ctx, "/d/a", "1"))
func (r *run) at(name string) func(resp any, err error) {
	return func(resp any, err error) {
		if err != nil {
			r.tr.add(name, errString(err))
			return
		}
		r.tr.add(name, r.n.render(resp))
	}
}

// rev is the server's current revision (a read does not change it).
func (r *run) rev() int64 {
	resp, err := r.c.Get(r.ctx, "difftest-revision-probe")
	if err != nil {
		r.t.Fatalf("reading current revision: %v", err)
	}
	return resp.Header.Revision
}

// watchStream is one raw gRPC Watch stream, so that created, canceled and
// progress responses are seen as they are on the wire. Events are grouped by
// watcher (the interleaving of watchers and the batching of events into
// responses are timing-dependent, even on etcd).
type watchStream struct {
	r      *run
	label  string
	stream pb.Watch_WatchClient
	in     chan recvd
	names  map[int64]string
	order  []string
	lines  map[string][]string
	// canceled holds the watchers a canceled response arrived for.
	canceled map[string]bool
}

type recvd struct {
	resp *pb.WatchResponse
	err  error
}

const watchTimeout = 10 * time.Second

func (r *run) openWatchStream(label string) *watchStream {
	ctx, cancel := context.WithCancel(r.ctx)
	r.t.Cleanup(cancel)
	st, err := pb.NewWatchClient(r.c.ActiveConnection()).Watch(ctx)
	if err != nil {
		r.t.Fatalf("opening watch stream %s: %v", label, err)
	}
	ws := &watchStream{r: r, label: label, stream: st, in: make(chan recvd, 1024), names: map[int64]string{}, lines: map[string][]string{}, canceled: map[string]bool{}}
	go func() {
		for {
			resp, err := st.Recv()
			ws.in <- recvd{resp, err}
			if err != nil {
				close(ws.in)
				return
			}
		}
	}()
	return ws
}

// next returns the next response, or "" and a description of why there is none.
func (ws *watchStream) next(timeout time.Duration) (*pb.WatchResponse, string) {
	select {
	case m, ok := <-ws.in:
		if !ok {
			return nil, "stream closed"
		}
		if m.err != nil {
			return nil, "stream ended: " + errString(m.err)
		}
		return m.resp, ""
	case <-time.After(timeout):
		return nil, fmt.Sprintf("timeout after %v", timeout)
	}
}

func isProgress(resp *pb.WatchResponse) bool {
	return !resp.Created && !resp.Canceled && len(resp.Events) == 0 && resp.CompactRevision == 0
}

func (ws *watchStream) nameOf(id int64) string {
	if name, ok := ws.names[id]; ok {
		return name
	}
	return fmt.Sprintf("unknown-watch-id-%d", id)
}

// absorb files a non-progress response under its watcher.
func (ws *watchStream) absorb(resp *pb.WatchResponse) {
	name := ws.nameOf(resp.WatchId)
	if _, ok := ws.lines[name]; !ok {
		ws.order = append(ws.order, name)
	}
	for _, ev := range resp.Events {
		ws.lines[name] = append(ws.lines[name], ws.r.n.event(ev))
	}
	switch {
	case resp.Created:
		ws.lines[name] = append(ws.lines[name], "unexpected created response: "+ws.created(resp))
	case resp.Canceled:
		ws.canceled[name] = true
		ws.lines[name] = append(ws.lines[name], fmt.Sprintf("canceled compact_revision=%d reason=%q", resp.CompactRevision, resp.CancelReason))
	case resp.CompactRevision != 0:
		ws.lines[name] = append(ws.lines[name], fmt.Sprintf("compact_revision=%d (not canceled)", resp.CompactRevision))
	}
	if resp.Fragment {
		ws.lines[name] = append(ws.lines[name], "fragment")
	}
}

func (ws *watchStream) created(resp *pb.WatchResponse) string {
	return fmt.Sprintf("created=%v canceled=%v compact_revision=%d reason=%q events=%d %s",
		resp.Created, resp.Canceled, resp.CompactRevision, resp.CancelReason, len(resp.Events), ws.r.n.header(resp.Header))
}

// create starts a watcher and records the created response.
func (ws *watchStream) create(name string, req *pb.WatchCreateRequest) {
	step := fmt.Sprintf("watch %s/%s create %s", ws.label, name, describeCreate(req))
	if err := ws.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: req}}); err != nil {
		ws.r.tr.add(step, "send: "+errString(err))
		return
	}
	deadline := time.Now().Add(watchTimeout)
	for {
		resp, why := ws.next(time.Until(deadline))
		if resp == nil {
			ws.r.tr.add(step, "no created response: "+why)
			return
		}
		if resp.Created {
			ws.names[resp.WatchId] = name
			ws.order = append(ws.order, name)
			ws.lines[name] = nil
			ws.r.tr.add(step, ws.created(resp))
			return
		}
		if !isProgress(resp) {
			ws.absorb(resp)
		}
	}
}

func describeCreate(req *pb.WatchCreateRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key=%q", req.Key)
	if len(req.RangeEnd) > 0 {
		fmt.Fprintf(&b, " range_end=%q", req.RangeEnd)
	}
	if req.StartRevision != 0 {
		fmt.Fprintf(&b, " start_revision=%d", req.StartRevision)
	}
	if req.PrevKv {
		b.WriteString(" prev_kv")
	}
	for _, f := range req.Filters {
		fmt.Fprintf(&b, " filter=%s", f)
	}
	return b.String()
}

// requestProgress asks for a progress notification.
func (ws *watchStream) requestProgress() error {
	return ws.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// sync records every event delivered since the last sync. A progress
// notification is ordered after the events before it, so once one arrives
// with the current revision, every event up to it has been delivered.
// etcd answers a progress request only while all of the stream's watchers
// are synced, so the request is repeated until one arrives.
func (ws *watchStream) sync(stepName string) {
	cur := ws.r.rev()
	step := fmt.Sprintf("watch %s events: %s", ws.label, stepName)
	deadline := time.Now().Add(watchTimeout)
	var failure string
	for failure == "" {
		if err := ws.requestProgress(); err != nil {
			failure = "progress request: " + errString(err)
			break
		}
		resend := time.Now().Add(250 * time.Millisecond)
		done := false
		for time.Now().Before(resend) {
			resp, why := ws.next(time.Until(resend))
			if resp == nil {
				if strings.HasPrefix(why, "timeout") {
					break
				}
				failure = why
				break
			}
			if isProgress(resp) {
				if resp.Header != nil && resp.Header.Revision >= cur {
					done = true
					break
				}
				continue
			}
			ws.absorb(resp)
		}
		if done {
			break
		}
		if failure == "" && time.Now().After(deadline) {
			failure = fmt.Sprintf("no progress notification at revision %d within %v", cur, watchTimeout)
		}
	}
	ws.record(step, failure)
}

// progress records the answer to one progress request (all watchers must
// be synced, which a preceding sync ensures).
func (ws *watchStream) progress() {
	step := fmt.Sprintf("watch %s progress request", ws.label)
	if err := ws.requestProgress(); err != nil {
		ws.r.tr.add(step, "send: "+errString(err))
		return
	}
	deadline := time.Now().Add(watchTimeout)
	for {
		resp, why := ws.next(time.Until(deadline))
		if resp == nil {
			ws.r.tr.add(step, "no progress notification: "+why)
			return
		}
		if isProgress(resp) {
			id := ws.nameOf(resp.WatchId)
			if resp.WatchId == clientv3.InvalidWatchID {
				id = "-1 (all watchers of the stream)"
			}
			ws.r.tr.add(step, fmt.Sprintf("progress watch_id=%s %s", id, ws.r.n.header(resp.Header)))
			return
		}
		ws.absorb(resp)
	}
}

// untilCanceled records what the named watchers receive up to their
// cancellation.
func (ws *watchStream) untilCanceled(stepName string, names ...string) {
	step := fmt.Sprintf("watch %s events: %s", ws.label, stepName)
	waiting := map[string]bool{}
	for _, n := range names {
		waiting[n] = true
	}
	deadline := time.Now().Add(watchTimeout)
	failure := ""
	for {
		for n := range waiting {
			if ws.canceled[n] {
				delete(waiting, n)
			}
		}
		if len(waiting) == 0 {
			break
		}
		resp, why := ws.next(time.Until(deadline))
		if resp == nil {
			failure = fmt.Sprintf("still not canceled: %v (%s)", slices.Sorted(maps.Keys(waiting)), why)
			break
		}
		if isProgress(resp) {
			continue
		}
		ws.absorb(resp)
	}
	ws.record(step, failure)
}

// record adds the events gathered per watcher as one step and resets them.
func (ws *watchStream) record(step, failure string) {
	var b strings.Builder
	for _, name := range ws.order {
		fmt.Fprintf(&b, "%s: %d\n", name, len(ws.lines[name]))
		for _, l := range ws.lines[name] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		ws.lines[name] = ws.lines[name][:0]
	}
	if failure != "" {
		fmt.Fprintf(&b, "FAILED: %s\n", failure)
	}
	ws.r.tr.add(step, strings.TrimRight(b.String(), "\n"))
}

// cancel cancels a watcher and records the canceled response.
func (ws *watchStream) cancel(name string) {
	step := fmt.Sprintf("watch %s/%s cancel", ws.label, name)
	var id int64 = -1
	for k, v := range ws.names {
		if v == name {
			id = k
		}
	}
	if err := ws.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}}); err != nil {
		ws.r.tr.add(step, "send: "+errString(err))
		return
	}
	deadline := time.Now().Add(watchTimeout)
	for {
		resp, why := ws.next(time.Until(deadline))
		if resp == nil {
			ws.r.tr.add(step, "no canceled response: "+why)
			return
		}
		if resp.Canceled && resp.WatchId == id && len(resp.Events) == 0 {
			ws.r.tr.add(step, fmt.Sprintf("canceled compact_revision=%d reason=%q %s", resp.CompactRevision, resp.CancelReason, ws.r.n.header(resp.Header)))
			return
		}
		if !isProgress(resp) {
			ws.absorb(resp)
		}
	}
}

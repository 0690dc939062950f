package difftest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"
)

// A transcript is what one server answered to the script, one rendered
// step at a time.
type transcript struct {
	steps []step
}

type step struct {
	name string
	out  string
}

func (tr *transcript) add(name, out string) {
	tr.steps = append(tr.steps, step{name: name, out: out})
}

// normalizer renders responses as text, normalizing what legitimately
// differs between two servers.
type normalizer struct {
	leases map[int64]string // server-chosen lease IDs → lease#N, in order of appearance
	chosen int              // server-chosen lease IDs seen so far
}

func newNormalizer() *normalizer {
	return &normalizer{leases: map[int64]string{}}
}

// fixedLease registers a lease ID the script chooses itself; it is printed
// as is, so a server that ignores the requested ID shows up.
func (n *normalizer) fixedLease(id int64) {
	n.leases[id] = fmt.Sprintf("0x%x", id)
}

func (n *normalizer) lease(id int64) string {
	if id == 0 {
		return "0"
	}
	if name, ok := n.leases[id]; ok {
		return name
	}
	n.chosen++
	name := fmt.Sprintf("lease#%d", n.chosen)
	n.leases[id] = name
	return name
}

// header keeps the revision; cluster ID, member ID and raft term differ
// legitimately, so only whether the IDs are set is kept.
func (n *normalizer) header(h *pb.ResponseHeader) string {
	if h == nil {
		return "header=nil"
	}
	ids := "set"
	if h.ClusterId == 0 || h.MemberId == 0 {
		ids = fmt.Sprintf("cluster=%d member=%d", h.ClusterId, h.MemberId)
	}
	return fmt.Sprintf("rev=%d ids=%s", h.Revision, ids)
}

func (n *normalizer) kv(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "nil"
	}
	return fmt.Sprintf("%q=%s c=%d m=%d v=%d lease=%s", kv.Key, value(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, n.lease(kv.Lease))
}

// value prints short values quoted and long ones by size and edges.
func value(v []byte) string {
	if len(v) <= 64 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q…(%d bytes)…%q", v[:16], len(v), v[len(v)-16:])
}

// errString keeps the gRPC code and message: clients (and kube-apiserver)
// match on both.
func errString(err error) string {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return fmt.Sprintf("error %v: %s", ee.Code(), ee.Error())
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("error %v: %s", s.Code(), s.Message())
	}
	return "error (not gRPC): " + err.Error()
}

// render prints any response the script records.
func (n *normalizer) render(v any) string {
	var b strings.Builder
	n.write(&b, "", v)
	return strings.TrimRight(b.String(), "\n")
}

func (n *normalizer) write(b *strings.Builder, in string, v any) {
	line := func(format string, args ...any) { fmt.Fprintf(b, in+format+"\n", args...) }
	switch r := v.(type) {
	case string:
		for _, l := range strings.Split(r, "\n") {
			line("%s", l)
		}
	case *clientv3.GetResponse:
		n.write(b, in, (*pb.RangeResponse)(r))
	case *pb.RangeResponse:
		line("range %s count=%d more=%v kvs=%d", n.header(r.Header), r.Count, r.More, len(r.Kvs))
		for _, kv := range r.Kvs {
			line("  %s", n.kv(kv))
		}
	case *clientv3.PutResponse:
		n.write(b, in, (*pb.PutResponse)(r))
	case *pb.PutResponse:
		line("put %s prev=%s", n.header(r.Header), n.kv(r.PrevKv))
	case *clientv3.DeleteResponse:
		n.write(b, in, (*pb.DeleteRangeResponse)(r))
	case *pb.DeleteRangeResponse:
		line("delete %s deleted=%d prev_kvs=%d", n.header(r.Header), r.Deleted, len(r.PrevKvs))
		for _, kv := range r.PrevKvs {
			line("  %s", n.kv(kv))
		}
	case *clientv3.TxnResponse:
		n.write(b, in, (*pb.TxnResponse)(r))
	case *pb.TxnResponse:
		line("txn %s succeeded=%v responses=%d", n.header(r.Header), r.Succeeded, len(r.Responses))
		for _, op := range r.Responses {
			switch o := op.Response.(type) {
			case *pb.ResponseOp_ResponseRange:
				n.write(b, in+"  ", o.ResponseRange)
			case *pb.ResponseOp_ResponsePut:
				n.write(b, in+"  ", o.ResponsePut)
			case *pb.ResponseOp_ResponseDeleteRange:
				n.write(b, in+"  ", o.ResponseDeleteRange)
			case *pb.ResponseOp_ResponseTxn:
				n.write(b, in+"  ", o.ResponseTxn)
			default:
				line("  unknown response op %T", op.Response)
			}
		}
	case *clientv3.CompactResponse:
		line("compact %s", n.header((*pb.CompactionResponse)(r).Header))
	case *clientv3.LeaseGrantResponse:
		line("lease grant %s id=%s ttl=%d error=%q", n.header(r.ResponseHeader), n.lease(int64(r.ID)), r.TTL, r.Error)
	case *pb.LeaseGrantResponse:
		line("lease grant %s id=%s ttl=%d error=%q", n.header(r.Header), n.lease(r.ID), r.TTL, r.Error)
	case *clientv3.LeaseRevokeResponse:
		line("lease revoke %s", n.header((*pb.LeaseRevokeResponse)(r).Header))
	case *clientv3.LeaseKeepAliveResponse:
		line("lease keepalive %s id=%s ttl=%d", n.header(r.ResponseHeader), n.lease(int64(r.ID)), r.TTL)
	case *clientv3.LeaseTimeToLiveResponse:
		// The remaining TTL depends on timing: only whether it is within
		// the granted TTL (minus the test's few seconds) is kept.
		ttl := fmt.Sprint(r.TTL)
		if r.TTL > 0 && r.TTL <= r.GrantedTTL && r.TTL >= r.GrantedTTL-10 {
			ttl = "≈granted"
		}
		keys := make([]string, 0, len(r.Keys))
		for _, k := range r.Keys {
			keys = append(keys, fmt.Sprintf("%q", k))
		}
		slices.Sort(keys)
		line("lease timetolive %s id=%s ttl=%s granted=%d keys=[%s]", n.header(r.ResponseHeader), n.lease(int64(r.ID)), ttl, r.GrantedTTL, strings.Join(keys, " "))
	case *clientv3.LeaseLeasesResponse:
		ids := make([]string, 0, len(r.Leases))
		for _, l := range r.Leases {
			ids = append(ids, n.lease(int64(l.ID)))
		}
		slices.Sort(ids)
		line("lease leases %s ids=[%s]", n.header(r.ResponseHeader), strings.Join(ids, " "))
	default:
		line("unrenderable %T", v)
	}
}

// event renders one watch event.
func (n *normalizer) event(ev *mvccpb.Event) string {
	s := fmt.Sprintf("%s %s", ev.Type, n.kv(ev.Kv))
	if ev.PrevKv != nil {
		s += " prev=" + n.kv(ev.PrevKv)
	}
	return s
}

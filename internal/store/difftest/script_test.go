package difftest

import (
	"fmt"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease IDs the script chooses itself (the rest are chosen by the server).
const (
	fixedLeaseA = 0x1234
	fixedLeaseB = 0x7777
	unusedLease = 0x9999
)

// script is the sequence of operations both servers get. Every step is
// recorded in r's transcript. It starts on a fresh server (revision 1).
func script(r *run) {
	ctx, c := r.ctx, r.c
	r.n.fixedLease(fixedLeaseA)
	r.n.fixedLease(fixedLeaseB)
	r.n.fixedLease(unusedLease)
	// Revisions in the script are relative to the starting revision (1 on a
	// fresh etcd), so that one off start shows as exactly that.
	base := r.rev()

	// Watchers started before any write, to see the whole history live.
	live := r.openWatchStream("live")
	live.create("exact-a", &pb.WatchCreateRequest{Key: []byte("/d/a")})
	live.create("prefix-prevkv", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), PrevKv: true})
	live.create("prefix-noput", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	live.create("range-b-d", &pb.WatchCreateRequest{Key: []byte("/d/b"), RangeEnd: []byte("/d/d")})
	live.create("all-keys", &pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	live.sync("nothing yet")
	live.progress()

	// ---- Put
	r.at("put /d/a")(c.Put(ctx, "/d/a", "1"))
	r.at("put /d/b prev_kv of a new key")(c.Put(ctx, "/d/b", "2", clientv3.WithPrevKV()))
	r.at("put /d/a prev_kv")(c.Put(ctx, "/d/a", "11", clientv3.WithPrevKV()))
	for _, k := range []string{"c", "d", "e", "f"} {
		r.at("put /d/" + k)(c.Put(ctx, "/d/"+k, "v-"+k))
	}
	r.at("put /d/a ignore_value prev_kv")(c.Put(ctx, "/d/a", "", clientv3.WithIgnoreValue(), clientv3.WithPrevKV()))
	r.at("put ignore_value on a missing key")(c.Put(ctx, "/d/zz", "", clientv3.WithIgnoreValue()))
	r.at("put ignore_value with a value")(c.Put(ctx, "/d/a", "x", clientv3.WithIgnoreValue()))
	r.at("put /d/a ignore_lease (no lease)")(c.Put(ctx, "/d/a", "12", clientv3.WithIgnoreLease()))
	r.at("put ignore_lease with a lease")(c.Put(ctx, "/d/a", "12", clientv3.WithIgnoreLease(), clientv3.WithLease(fixedLeaseA)))
	r.at("put empty key")(c.Put(ctx, "", "v"))
	r.at("put binary key and value")(c.Put(ctx, "/d/\x00\xff", "\x00\x01\xfe"))
	r.at("put empty value")(c.Put(ctx, "/d/empty", ""))
	r.at("put same value again")(c.Put(ctx, "/d/c", "v-c", clientv3.WithPrevKV()))
	live.sync("after puts")

	// ---- Range
	r.at("get /d/a")(c.Get(ctx, "/d/a"))
	r.at("get missing key")(c.Get(ctx, "/d/missing"))
	r.at("get empty key")(c.Get(ctx, ""))
	r.at("get prefix /d/")(c.Get(ctx, "/d/", clientv3.WithPrefix()))
	r.at("get prefix limit 2")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithLimit(2)))
	r.at("get prefix limit = count")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithLimit(8)))
	r.at("get prefix count_only")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithCountOnly()))
	r.at("get prefix count_only limit 1")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithLimit(1)))
	r.at("get prefix keys_only")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithKeysOnly()))
	r.at("get prefix keys_only limit 3")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(3)))
	for _, target := range []clientv3.SortTarget{clientv3.SortByKey, clientv3.SortByVersion, clientv3.SortByCreateRevision, clientv3.SortByModRevision, clientv3.SortByValue} {
		for _, order := range []clientv3.SortOrder{clientv3.SortAscend, clientv3.SortDescend} {
			name := fmt.Sprintf("get prefix sort %v %v", pb.RangeRequest_SortTarget(target), pb.RangeRequest_SortOrder(order))
			r.at(name)(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithSort(target, order)))
			r.at(name + " limit 3")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithSort(target, order), clientv3.WithLimit(3)))
		}
	}
	r.at("get prefix sort none by mod revision")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortNone)))
	r.at("get /d/a at revision base+1")(c.Get(ctx, "/d/a", clientv3.WithRev(base+1)))
	r.at("get /d/a at revision base+3")(c.Get(ctx, "/d/a", clientv3.WithRev(base+3)))
	r.at("get /d/c at revision base+1 (not yet created)")(c.Get(ctx, "/d/c", clientv3.WithRev(base+1)))
	r.at("get prefix at revision base+4")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(base+4)))
	r.at("get prefix at revision base+4 limit 1")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(base+4), clientv3.WithLimit(1)))
	r.at("get prefix at revision base+4 count_only")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(base+4), clientv3.WithCountOnly()))
	r.at("get range [/d/b, /d/e)")(c.Get(ctx, "/d/b", clientv3.WithRange("/d/e")))
	r.at("get range end before key")(c.Get(ctx, "/d/e", clientv3.WithRange("/d/b")))
	r.at("get from key /d/d")(c.Get(ctx, "/d/d", clientv3.WithFromKey()))
	r.at("get all keys")(c.Get(ctx, "\x00", clientv3.WithFromKey()))
	r.at("get prefix min_mod_revision base+5")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithMinModRev(base+5)))
	r.at("get prefix max_mod_revision base+5")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithMaxModRev(base+5)))
	r.at("get prefix min_create_revision base+3")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithMinCreateRev(base+3)))
	r.at("get prefix max_create_revision base+4")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(base+4)))
	r.at("get prefix min_mod base+3 max_mod base+6 limit 2")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithMinModRev(base+3), clientv3.WithMaxModRev(base+6), clientv3.WithLimit(2)))
	r.at("get prefix serializable")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithSerializable()))
	cur := r.rev()
	r.at("get at current revision")(c.Get(ctx, "/d/a", clientv3.WithRev(cur)))
	r.at("get at future revision")(c.Get(ctx, "/d/a", clientv3.WithRev(cur+1)))
	r.at("get at far future revision")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(cur+1000)))

	// ---- DeleteRange
	r.at("delete missing key")(c.Delete(ctx, "/d/missing"))
	r.at("delete missing key prev_kv")(c.Delete(ctx, "/d/missing", clientv3.WithPrevKV()))
	r.at("delete /d/f prev_kv")(c.Delete(ctx, "/d/f", clientv3.WithPrevKV()))
	r.at("delete range [/d/d, /d/e\\x00) prev_kv")(c.Delete(ctx, "/d/d", clientv3.WithRange("/d/e\x00"), clientv3.WithPrevKV()))
	r.at("delete binary key")(c.Delete(ctx, "/d/\x00", clientv3.WithPrefix()))
	r.at("delete empty key")(c.Delete(ctx, ""))
	r.at("put /d/f again")(c.Put(ctx, "/d/f", "v-f2", clientv3.WithPrevKV()))
	r.at("get /d/f at revision before its deletion")(c.Get(ctx, "/d/f", clientv3.WithRev(cur)))
	r.at("get prefix after deletes")(c.Get(ctx, "/d/", clientv3.WithPrefix()))
	live.sync("after deletes")

	// ---- Txn
	r.at("txn value = : then put+get")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/d/a"), "=", "12")).
		Then(clientv3.OpPut("/d/t1", "x", clientv3.WithPrevKV()), clientv3.OpGet("/d/a")).
		Else(clientv3.OpPut("/d/t2", "y")).Commit())
	r.at("txn version > : else get+count")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/d/a"), ">", 5)).
		Then(clientv3.OpPut("/d/t2", "y")).
		Else(clientv3.OpGet("/d/a"), clientv3.OpGet("/d/", clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit())
	r.at("txn every compare target, all true")(c.Txn(ctx).
		If(
			clientv3.Compare(clientv3.CreateRevision("/d/a"), "=", base+1),
			clientv3.Compare(clientv3.ModRevision("/d/a"), ">", base+1),
			clientv3.Compare(clientv3.Version("/d/a"), "<", 10),
			clientv3.Compare(clientv3.LeaseValue("/d/a"), "=", clientv3.NoLease),
			clientv3.Compare(clientv3.Value("/d/b"), "!=", "zzz"),
			clientv3.Compare(clientv3.Value("/d/b"), "<", "3"),
			clientv3.Compare(clientv3.Value("/d/b"), ">", "1"),
			clientv3.Compare(clientv3.Version("/d/missing"), "=", 0),
			clientv3.Compare(clientv3.CreateRevision("/d/missing"), "=", 0),
			clientv3.Compare(clientv3.ModRevision("/d/missing"), "<", 1),
		).
		Then(clientv3.OpDelete("/d/t1", clientv3.WithPrevKV()), clientv3.OpPut("/d/t3", "z", clientv3.WithPrevKV())).Commit())
	r.at("txn mod_revision < fails")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision("/d/a"), "<", base+1)).
		Then(clientv3.OpPut("/d/t4", "no")).
		Else(clientv3.OpGet("/d/t", clientv3.WithPrefix())).Commit())
	r.at("txn value compare on missing key fails")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/d/missing"), "=", "")).
		Then(clientv3.OpPut("/d/t4", "no")).Commit())
	r.at("txn value != on missing key")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/d/missing"), "!=", "x")).
		Then(clientv3.OpPut("/d/t4", "no")).Commit())
	r.at("txn compare over a prefix, all match")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/d/"), ">", 0).WithPrefix()).
		Then(clientv3.OpGet("/d/t3")).Commit())
	r.at("txn compare over a prefix, one fails")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision("/d/"), "<", base+4).WithPrefix()).
		Then(clientv3.OpGet("/d/t3")).Else(clientv3.OpGet("/d/b")).Commit())
	r.at("txn compare over an empty range")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/x/"), "=", 7).WithPrefix()).
		Then(clientv3.OpGet("/d/t3")).Commit())
	r.at("txn compare over a range")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/d/a"), ">", "").WithRange("/d/c")).
		Then(clientv3.OpGet("/d/a", clientv3.WithRange("/d/c"))).Commit())
	r.at("txn nested")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/d/a"), ">", 0)).
		Then(
			clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value("/d/a"), "=", "12")},
				[]clientv3.Op{clientv3.OpPut("/d/n1", "1"), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("/d/n2", "2")}, nil)},
				[]clientv3.Op{clientv3.OpPut("/d/n3", "3")}),
			clientv3.OpGet("/d/n", clientv3.WithPrefix()),
		).Commit())
	r.at("txn nested, else branch")(c.Txn(ctx).
		Then(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("/d/a"), "=", "nope")},
			[]clientv3.Op{clientv3.OpPut("/d/n4", "4")},
			[]clientv3.Op{clientv3.OpDelete("/d/n1", clientv3.WithPrevKV()), clientv3.OpGet("/d/n", clientv3.WithPrefix(), clientv3.WithCountOnly())})).Commit())
	r.at("txn reads its own writes")(c.Txn(ctx).
		Then(clientv3.OpPut("/d/own", "1"), clientv3.OpGet("/d/own"), clientv3.OpDelete("/d/n2"), clientv3.OpGet("/d/n", clientv3.WithPrefix())).Commit())
	r.at("txn duplicate put")(c.Txn(ctx).Then(clientv3.OpPut("/d/x", "1"), clientv3.OpPut("/d/x", "2")).Commit())
	r.at("txn put inside a deleted range")(c.Txn(ctx).Then(clientv3.OpPut("/d/x", "1"), clientv3.OpDelete("/d/", clientv3.WithPrefix())).Commit())
	r.at("txn duplicate put in a nested txn")(c.Txn(ctx).Then(clientv3.OpPut("/d/x", "1"), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("/d/x", "2")}, nil)).Commit())
	r.at("txn same key in then and else")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.Version("/d/x"), "=", 0)).
		Then(clientv3.OpPut("/d/x", "then")).Else(clientv3.OpPut("/d/x", "else")).Commit())
	r.at("txn two deletes of one key")(c.Txn(ctx).Then(clientv3.OpDelete("/d/x"), clientv3.OpDelete("/d/x")).Commit())
	r.at("txn empty")(c.Txn(ctx).Commit())
	r.at("txn read-only")(c.Txn(ctx).Then(clientv3.OpGet("/d/a"), clientv3.OpGet("/d/b", clientv3.WithRev(base+2))).Commit())
	r.at("txn delete missing key")(c.Txn(ctx).Then(clientv3.OpDelete("/d/missing", clientv3.WithPrevKV())).Commit())
	r.at("txn delete missing key and put")(c.Txn(ctx).Then(clientv3.OpDelete("/d/missing"), clientv3.OpPut("/d/t5", "5")).Commit())
	many := make([]clientv3.Op, 129)
	for i := range many {
		many[i] = clientv3.OpPut(fmt.Sprintf("/d/many/%03d", i), "v")
	}
	r.at("txn with 129 operations")(c.Txn(ctx).Then(many...).Commit())
	r.at("txn with 128 operations")(c.Txn(ctx).Then(many[:128]...).Commit())
	r.at("txn delete prefix with prev_kv")(c.Txn(ctx).Then(clientv3.OpDelete("/d/many/", clientv3.WithPrefix(), clientv3.WithPrevKV())).Commit())
	r.at("txn put empty key")(c.Txn(ctx).Then(clientv3.OpPut("", "v")).Commit())
	r.at("txn get at a future revision")(c.Txn(ctx).Then(clientv3.OpGet("/d/a", clientv3.WithRev(r.rev()+5))).Commit())
	r.at("txn ignore_value on missing key")(c.Txn(ctx).Then(clientv3.OpPut("/d/nope", "", clientv3.WithIgnoreValue())).Commit())
	live.sync("after txns")

	// ---- Lease
	grant60, err := c.Grant(ctx, 60)
	r.at("lease grant ttl 60")(grant60, err)
	var lease60 clientv3.LeaseID
	if err == nil {
		lease60 = grant60.ID
	}
	r.at("lease grant fixed id A ttl 120")(r.leaseAPI.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: fixedLeaseA, TTL: 120}))
	r.at("lease grant fixed id A again")(r.leaseAPI.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: fixedLeaseA, TTL: 120}))
	r.at("lease grant fixed id B ttl 300")(r.leaseAPI.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: fixedLeaseB, TTL: 300}))
	r.at("lease grant ttl too large")(c.Grant(ctx, 9_000_000_001))
	r.at("put /d/l1 with lease 60")(c.Put(ctx, "/d/l1", "l1", clientv3.WithLease(lease60)))
	r.at("put /d/l2 with lease 60")(c.Put(ctx, "/d/l2", "l2", clientv3.WithLease(lease60)))
	r.at("put /d/l3 with lease A")(c.Put(ctx, "/d/l3", "l3", clientv3.WithLease(fixedLeaseA)))
	r.at("put /d/l4 with lease B")(c.Put(ctx, "/d/l4", "l4", clientv3.WithLease(fixedLeaseB)))
	r.at("put with a lease that does not exist")(c.Put(ctx, "/d/l9", "l9", clientv3.WithLease(unusedLease)))
	r.at("get /d/l prefix")(c.Get(ctx, "/d/l", clientv3.WithPrefix()))
	r.at("txn lease compare")(c.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue("/d/l1"), "=", lease60), clientv3.Compare(clientv3.LeaseValue("/d/l3"), "!=", lease60)).
		Then(clientv3.OpGet("/d/l1")).Commit())
	r.at("txn put with a lease that does not exist")(c.Txn(ctx).Then(clientv3.OpPut("/d/l9", "l9", clientv3.WithLease(unusedLease))).Commit())
	r.at("lease keepalive once")(c.KeepAliveOnce(ctx, lease60))
	r.at("lease keepalive once, unknown lease")(c.KeepAliveOnce(ctx, unusedLease))
	r.at("lease timetolive with keys")(c.TimeToLive(ctx, lease60, clientv3.WithAttachedKeys()))
	r.at("lease timetolive A without keys")(c.TimeToLive(ctx, fixedLeaseA))
	r.at("lease timetolive unknown lease")(c.TimeToLive(ctx, unusedLease, clientv3.WithAttachedKeys()))
	r.at("lease leases")(c.Leases(ctx))
	r.at("put /d/l2 ignore_lease")(c.Put(ctx, "/d/l2", "l2b", clientv3.WithIgnoreLease(), clientv3.WithPrevKV()))
	r.at("put /d/l4 detaches it from lease B")(c.Put(ctx, "/d/l4", "l4b", clientv3.WithPrevKV()))
	r.at("put /d/l3 moves it to lease B")(c.Put(ctx, "/d/l3", "l3b", clientv3.WithLease(fixedLeaseB)))
	r.at("lease timetolive B with keys")(c.TimeToLive(ctx, fixedLeaseB, clientv3.WithAttachedKeys()))
	r.at("lease timetolive A with keys")(c.TimeToLive(ctx, fixedLeaseA, clientv3.WithAttachedKeys()))
	live.sync("after lease puts")
	r.at("lease revoke 60")(c.Revoke(ctx, lease60))
	r.at("get /d/l prefix after revoke")(c.Get(ctx, "/d/l", clientv3.WithPrefix()))
	r.at("lease timetolive revoked")(c.TimeToLive(ctx, lease60, clientv3.WithAttachedKeys()))
	r.at("lease revoke again")(c.Revoke(ctx, lease60))
	r.at("lease keepalive once, revoked")(c.KeepAliveOnce(ctx, lease60))
	r.at("lease revoke A (no keys)")(c.Revoke(ctx, fixedLeaseA))
	r.at("lease leases after revokes")(c.Leases(ctx))
	live.sync("after revokes (delete events)")

	// ---- Watch: history, cancel, future start revision
	hist := r.openWatchStream("history")
	hist.create("prefix-from-base+1", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), StartRevision: base + 1})
	hist.create("prefix-from-base+2-prevkv", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), StartRevision: base + 2, PrevKv: true})
	hist.create("key-a-from-base-nodelete", &pb.WatchCreateRequest{Key: []byte("/d/a"), StartRevision: base, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	hist.create("binary-from-base", &pb.WatchCreateRequest{Key: []byte("/d/\x00"), RangeEnd: []byte("/d/\x01"), StartRevision: base})
	hist.sync("replayed history")
	hist.progress()
	r.at("put /d/a while history watchers run")(c.Put(ctx, "/d/a", "13"))
	// Let every watcher receive that put before cancelling one: whether a
	// cancel overtakes an event in flight is timing, on etcd as here.
	hist.sync("put while history watchers run")
	hist.cancel("prefix-from-base+1")
	r.at("put /d/b after a cancel")(c.Put(ctx, "/d/b", "3"))
	hist.sync("after cancel")
	hist.cancel("prefix-from-base+2-prevkv")
	hist.cancel("key-a-from-base-nodelete")
	hist.cancel("binary-from-base")

	future := r.openWatchStream("future")
	start := r.rev() + 3
	future.create("prefix-from-future", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), StartRevision: start, PrevKv: true})
	for i := range 5 {
		r.at(fmt.Sprintf("put /d/fut%d", i))(c.Put(ctx, fmt.Sprintf("/d/fut%d", i), "f"))
	}
	future.sync("events from the future start revision on")
	live.sync("after future puts")

	// ---- Compaction, at a revision that modified a key: a watcher starting
	// there with prev_kv gets the event, but its previous value is compacted.
	compactAt := r.rev() + 1
	r.at("put /d/fut0 again (compaction revision)")(c.Put(ctx, "/d/fut0", "f2"))
	for i := range 4 {
		r.at(fmt.Sprintf("put /d/late%d", i))(c.Put(ctx, fmt.Sprintf("/d/late%d", i), "l"))
	}
	future.sync("events after the compaction revision")
	live.sync("after late puts")
	r.at("compact")(c.Compact(ctx, compactAt))
	r.at("compact again at the same revision")(c.Compact(ctx, compactAt))
	r.at("compact at an older revision")(c.Compact(ctx, compactAt-1))
	r.at("compact at a future revision")(c.Compact(ctx, r.rev()+10))
	r.at("get at a compacted revision")(c.Get(ctx, "/d/a", clientv3.WithRev(compactAt-1)))
	r.at("get prefix at the start revision (compacted)")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(base)))
	r.at("get prefix at the compaction revision")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(compactAt)))
	r.at("get prefix count at the compaction revision")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(compactAt), clientv3.WithCountOnly()))
	r.at("get after the compaction revision")(c.Get(ctx, "/d/", clientv3.WithPrefix(), clientv3.WithRev(compactAt+1)))
	r.at("txn get at a compacted revision")(c.Txn(ctx).Then(clientv3.OpGet("/d/a", clientv3.WithRev(compactAt-1))).Commit())
	// etcd never answers a progress request on a stream that holds a
	// watcher canceled for compaction, so those get a stream of their own,
	// read until the cancellations arrive.
	compacted := r.openWatchStream("compacted")
	compacted.create("from-compacted", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), StartRevision: compactAt - 1})
	compacted.create("from-base", &pb.WatchCreateRequest{Key: []byte("/d/a"), StartRevision: base})
	compacted.untilCanceled("watchers before the compaction revision", "from-compacted", "from-base")
	atCompact := r.openWatchStream("at-compaction")
	atCompact.create("from-compaction-rev", &pb.WatchCreateRequest{Key: []byte("/d/"), RangeEnd: []byte("/d0"), StartRevision: compactAt, PrevKv: true})
	atCompact.sync("watcher at the compaction revision")
	r.at("compact physical at current revision")(c.Compact(ctx, r.rev(), clientv3.WithCompactPhysical()))
	r.at("put after compacting everything")(c.Put(ctx, "/d/a", "14", clientv3.WithPrevKV()))
	r.at("get /d/a after compacting everything")(c.Get(ctx, "/d/a"))
	atCompact.sync("after compacting at the current revision")
	live.sync("after compaction")

	// ---- Request size
	r.at("put 1.6 MiB value (over the request limit)")(c.Put(ctx, "/d/big", strings.Repeat("x", 1600*1024)))
	r.at("put 1 MiB value")(c.Put(ctx, "/d/big", strings.Repeat("y", 1024*1024)))
	r.at("get 1 MiB value")(c.Get(ctx, "/d/big"))
	bigOps := make([]clientv3.Op, 4)
	for i := range bigOps {
		bigOps[i] = clientv3.OpPut(fmt.Sprintf("/d/bigtxn/%d", i), strings.Repeat("z", 400*1024))
	}
	r.at("txn of 1.6 MiB (over the request limit)")(c.Txn(ctx).Then(bigOps...).Commit())
	live.sync("after large requests")

	r.at("final state")(c.Get(ctx, "\x00", clientv3.WithFromKey()))
}

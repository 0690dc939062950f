package store

import (
	"errors"
	"io"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMaintenanceAndCluster(t *testing.T) {
	s := startServer(t, "")
	c := newClient(t, s)
	ctx := ctxT(t)
	c.Put(ctx, "a", "b")
	st, err := c.Status(ctx, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != etcdVersion || st.Header.Revision != 2 || st.Leader != st.Header.MemberId || st.RaftTerm != 1 || st.DbSize <= 0 {
		t.Fatalf("status: %+v", st)
	}
	ml, err := c.MemberList(ctx)
	if err != nil || len(ml.Members) != 1 || ml.Members[0].ClientURLs[0] != "http://"+s.Addr() || ml.Members[0].ID != ml.Header.MemberId {
		t.Fatalf("member list: %+v %v", ml, err)
	}
	al, err := c.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 0 {
		t.Fatalf("alarms: %+v %v", al, err)
	}
	if _, err := c.Defragment(ctx, s.Addr()); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	rc, err := c.Snapshot(ctx)
	if err == nil {
		_, err = io.ReadAll(rc)
	}
	if status.Code(errors.Unwrap(err)) != codes.Unimplemented && status.Code(err) != codes.Unimplemented {
		t.Fatalf("snapshot: %v", err)
	}
	if _, err := pb.NewAuthClient(c.ActiveConnection()).UserAdd(ctx, &pb.AuthUserAddRequest{Name: "u"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("auth: %v", err)
	}
	if _, err := c.MemberAdd(ctx, []string{"http://x:1"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("member add: %v", err)
	}
}

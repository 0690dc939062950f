package store

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

const (
	// etcdVersion is the etcd release this server answers as. kube-apiserver
	// reads it from Status to enable the watch-cache features that rely on
	// progress notifications (RequestWatchProgress, consistent reads from
	// cache), which this server implements as etcd 3.6 does.
	etcdVersion = "3.6.14"
	// storageVersion is etcd 3.6's storage version.
	storageVersion = "3.6.0"
)

// maintenanceServer implements the parts of etcd's Maintenance service
// that make sense for this store.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server
}

func (m *maintenanceServer) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := m.s.be.Status(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	rev := uint64(max(st.Revision, 0))
	return &pb.StatusResponse{
		Header:           m.s.header(st.Revision),
		Version:          etcdVersion,
		DbSize:           st.DBSize,
		DbSizeInUse:      st.DBSizeInUse,
		Leader:           m.s.member,
		RaftIndex:        rev,
		RaftTerm:         1,
		RaftAppliedIndex: rev,
		StorageVersion:   storageVersion,
	}, nil
}

// Alarm: this store raises no alarms. Listing and deactivating succeed
// with an empty list; activating is not supported.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action == pb.AlarmRequest_ACTIVATE {
		return nil, unimplemented("activating alarms")
	}
	return &pb.AlarmResponse{Header: m.s.header(0), Alarms: []*pb.AlarmMember{}}, nil
}

// Defragment is a no-op: engines reclaim space on their own.
func (m *maintenanceServer) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return &pb.DefragmentResponse{Header: m.s.header(0)}, nil
}

func (m *maintenanceServer) Hash(context.Context, *pb.HashRequest) (*pb.HashResponse, error) {
	return nil, unimplemented("Maintenance.Hash")
}

func (m *maintenanceServer) HashKV(context.Context, *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	return nil, unimplemented("Maintenance.HashKV")
}

func (m *maintenanceServer) Snapshot(*pb.SnapshotRequest, pb.Maintenance_SnapshotServer) error {
	return unimplemented("Maintenance.Snapshot (back up the data directory or database instead)")
}

func (m *maintenanceServer) MoveLeader(context.Context, *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	return nil, unimplemented("Maintenance.MoveLeader")
}

func (m *maintenanceServer) Downgrade(context.Context, *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, unimplemented("Maintenance.Downgrade")
}

// authServer rejects the Auth service: authentication is by TLS client
// certificates only. AuthStatus truthfully reports auth as disabled.
type authServer struct {
	pb.UnimplementedAuthServer
}

func (authServer) AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return &pb.AuthStatusResponse{Header: &pb.ResponseHeader{}, Enabled: false}, nil
}

package store

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// clusterServer implements etcd's Cluster service for a one-member
// cluster: MemberList answers, membership changes are not supported.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

func (c *clusterServer) MemberList(ctx context.Context, _ *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	url := c.s.ClientURL()
	return &pb.MemberListResponse{
		Header: c.s.header(0),
		Members: []*pb.Member{{
			ID:         c.s.member,
			Name:       c.s.cfg.Name,
			PeerURLs:   []string{url},
			ClientURLs: []string{url},
		}},
	}, nil
}

func (c *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, unimplemented("Cluster.MemberAdd")
}

func (c *clusterServer) MemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, unimplemented("Cluster.MemberRemove")
}

func (c *clusterServer) MemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, unimplemented("Cluster.MemberUpdate")
}

func (c *clusterServer) MemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, unimplemented("Cluster.MemberPromote")
}

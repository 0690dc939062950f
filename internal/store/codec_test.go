package store

import (
	"bytes"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestCodecRoundTrip(t *testing.T) {
	c, err := newCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, kvs := range []int{0, 3, 500} {
		resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 42, ClusterId: 7}, Count: int64(kvs * 2), More: kvs > 0}
		for i := range kvs {
			resp.Kvs = append(resp.Kvs, &mvccpb.KeyValue{Key: []byte(strings.Repeat("k", i%40+1)), Value: bytes.Repeat([]byte{byte(i)}, 1024),
				CreateRevision: int64(i), ModRevision: int64(i + 1), Version: 2, Lease: int64(i % 3)})
		}
		data, err := c.Marshal(resp)
		if err != nil {
			t.Fatalf("%d kvs: marshal: %v", kvs, err)
		}
		want, err := resp.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("%d kvs: codec wrote %d bytes that differ from the generated Marshal's %d", kvs, len(got), len(want))
		}
		var back pb.RangeResponse
		if err := c.Unmarshal(data, &back); err != nil {
			t.Fatalf("%d kvs: unmarshal: %v", kvs, err)
		}
		data.Free()
		if back.String() != resp.String() {
			t.Fatalf("%d kvs: round trip changed the message", kvs)
		}
	}
}

func TestCodecFallsBack(t *testing.T) {
	c, err := newCodec()
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal(&emptypb.Empty{})
	if err != nil {
		t.Fatalf("marshal of a non-gogo message: %v", err)
	}
	if err := c.Unmarshal(data, &emptypb.Empty{}); err != nil {
		t.Fatalf("unmarshal of a non-gogo message: %v", err)
	}
	if _, err := c.Marshal(struct{}{}); err == nil {
		t.Fatal("marshal of a non-message: no error")
	}
}

package store

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// gogoMessage is what the etcd API's generated (gogo/protobuf) types
// implement: they size and marshal themselves without reflection.
type gogoMessage interface {
	Size() int
	MarshalToSizedBuffer(dst []byte) (int, error)
	Unmarshal(src []byte) error
}

// codec is the server's "proto" codec. gRPC's default codec reaches the
// etcd types through the protobuf legacy adapter, which sizes every
// message twice (once for the buffer, once inside the generated Marshal)
// and goes through reflection; a page of 500 objects spends a quarter of
// its CPU there. codec calls the generated methods directly and passes
// anything else to the default codec.
type codec struct{ fallback encoding.CodecV2 }

func newCodec() (codec, error) {
	fb := encoding.GetCodecV2("proto")
	if fb == nil {
		return codec{}, fmt.Errorf("grpc has no proto codec registered")
	}
	return codec{fallback: fb}, nil
}

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.Size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		n, err := m.MarshalToSizedBuffer(buf)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf[size-n:])}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	n, err := m.MarshalToSizedBuffer((*buf)[:size])
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	if n != size {
		pool.Put(buf)
		return nil, fmt.Errorf("marshaling %T: wrote %d bytes of %d", v, n, size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	// The generated Unmarshal copies bytes fields, so the buffer can go
	// back to the pool.
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.Unmarshal(buf.ReadOnlyData())
}

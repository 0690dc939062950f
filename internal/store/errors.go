package store

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// toGRPCError maps an error from the evaluator or the backend to the gRPC
// error etcd returns for the same condition. Errors that are already gRPC
// statuses pass through; context errors become Canceled/DeadlineExceeded.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		// Return the status error itself, not the wrapping text: etcd
		// clients match errors by their exact message.
		return se.(error)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, backend.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, backend.ErrFutureRevision):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, backend.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, backend.ErrClosed):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, backend.ErrCorrupt):
		return rpctypes.ErrGRPCCorrupt
	case errors.Is(err, backend.ErrUnavailable):
		// Unavailable is what etcd clients retry (reads, watches) and
		// what kube-apiserver reports as a storage outage.
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

func unimplemented(what string) error {
	return status.Errorf(codes.Unimplemented, "keelson store: %s is not supported", what)
}

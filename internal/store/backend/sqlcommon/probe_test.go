package sqlcommon

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// TestProbeEndsLoopingFunction: a function that retries until it finds an
// unused lease ID (the store's LeaseGrant without an ID) never finds one
// on a probeTx, where every lease exists. The probe run must still end,
// and the other functions of the batch must still be probed: the
// committer runs probes, so a probe that never returns stops every write.
func TestProbeEndsLoopingFunction(t *testing.T) {
	ctx := context.Background()
	grant := func(tx backend.WriteTx) error {
		for {
			id := rand.Int64()
			_, err := tx.Lease(ctx, id)
			if errors.Is(err, backend.ErrLeaseNotFound) {
				return tx.PutLease(ctx, backend.Lease{ID: id, TTL: 60})
			}
			if err != nil {
				return err
			}
		}
	}
	put := func(tx backend.WriteTx) error {
		_, err := tx.Range(ctx, backend.RangeOptions{Key: []byte("/registry/pods/a")})
		return err
	}
	reqs := []*request{{ctx: ctx, fn: grant}, {ctx: ctx, fn: put}}
	var c writeCache
	done := make(chan [][]byte, 1)
	go func() { done <- c.probe(reqs, c.rev) }()
	select {
	case keys := <-done:
		if len(keys) != 1 || string(keys[0]) != "/registry/pods/a" {
			t.Errorf("probed keys %q, want [/registry/pods/a]", keys)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("probe of a function looping on Lease did not return")
	}
}

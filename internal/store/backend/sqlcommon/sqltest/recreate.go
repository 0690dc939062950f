package sqltest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// testRecreate covers keys written with a plain INSERT because the write
// cache knows them absent: created after a committed delete, deleted and
// created again within one function, and deleted by one function and
// created by another of the same batch; and keys overwritten, which must
// not be taken for new ones. Every key must end with the
// value and version of its last write.
func testRecreate(t *testing.T, db DB) {
	be := db.open(t, db.NewURL(t))
	ctx := ctxT(t)
	put := func(k, v string) backendtest.Op { return backendtest.Op{Key: []byte(k), Value: []byte(v)} }
	del := func(k string) backendtest.Op { return backendtest.Op{Key: []byte(k), Delete: true} }
	update := func(ops ...backendtest.Op) error {
		return be.Update(ctx, func(tx backend.WriteTx) error {
			for _, op := range ops {
				if _, err := backendtest.ApplyOps(ctx, tx, op); err != nil {
					return err
				}
			}
			return nil
		})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Created, deleted, created again in separate transactions.
	must(update(put("/a", "1")))
	must(update(del("/a")))
	must(update(put("/a", "2")))
	// Overwritten: an upsert, in separate transactions and within one.
	must(update(put("/d", "1")))
	must(update(put("/d", "2")))
	must(update(put("/e", "1"), put("/e", "2")))
	// Created, deleted and created again within one function.
	must(update(put("/b", "1"), del("/b"), put("/b", "2")))
	// In one batch (many concurrent functions): existing keys deleted by
	// one function and created by another, new keys created.
	const n = 64
	for i := range n {
		must(update(put(fmt.Sprintf("/c/%02d", i), "old")))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		k := fmt.Sprintf("/c/%02d", i)
		wg.Go(func() { errs <- update(del(k)) })
		wg.Go(func() { errs <- update(put(k+"/new", "v")) })
	}
	wg.Wait()
	for i := range n {
		k := fmt.Sprintf("/c/%02d", i)
		wg.Go(func() { errs <- update(put(k, "again")) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(err)
	}
	check := func(k, v string, version int64) {
		t.Helper()
		err := be.View(context.Background(), func(tx backend.ReadTx) error {
			res, err := tx.Range(ctx, backend.RangeOptions{Key: []byte(k)})
			if err != nil {
				return err
			}
			if len(res.KVs) != 1 || string(res.KVs[0].Value) != v || res.KVs[0].Version != version {
				return fmt.Errorf("%s: got %+v, want value %q version %d", k, res.KVs, v, version)
			}
			return nil
		})
		must(err)
	}
	check("/a", "2", 1)
	check("/b", "2", 1)
	check("/d", "2", 2)
	check("/e", "2", 2)
	for i := range n {
		check(fmt.Sprintf("/c/%02d", i), "again", 1)
		check(fmt.Sprintf("/c/%02d/new", i), "v", 1)
	}
}

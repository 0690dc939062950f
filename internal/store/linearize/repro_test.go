package linearize

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
	"github.com/keelson-dev/keelson/internal/store/backend/mysql"
	"github.com/keelson-dev/keelson/internal/store/backend/postgres"
	"github.com/keelson-dev/keelson/internal/store/conformance/dbtest"
)

// TestCommitInDoubt is the minimal form of what TestLinearizableWithConnectionLoss
// found: when the database drops the connection while a write batch
// commits, the engine must not run the batch's functions again — the
// commit may have happened. Each Update here creates a key that must not
// exist yet; a function that finds its own key already there was re-run
// after its earlier run committed, and its caller gets the re-run's answer
// (for a store Txn: "compare failed", although its Then branch was applied).
func TestCommitInDoubt(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	engines := []struct {
		name string
		open func(ctx context.Context, url string) (backend.Backend, error)
		url  func(testing.TB) string
	}{
		{"postgres", func(ctx context.Context, u string) (backend.Backend, error) {
			return postgres.Open(ctx, u, postgres.Options{Logger: quiet})
		}, dbtest.NewPostgres},
		{"mysql", func(ctx context.Context, u string) (backend.Backend, error) {
			return mysql.Open(ctx, u, mysql.Options{Logger: quiet})
		}, dbtest.NewMySQL},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := e.url(t)
			b, err := e.open(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, stop := context.WithTimeout(t.Context(), 2*time.Second)
			defer stop()
			var wg sync.WaitGroup
			var ok, failed, reruns atomic.Int64
			var mu sync.Mutex
			var examples []string
			for w := range 8 {
				wg.Go(func() {
					for i := 0; ctx.Err() == nil; i++ {
						key := fmt.Sprintf("w%d/%d", w, i)
						runs := 0
						err := b.Update(t.Context(), func(tx backend.WriteTx) error {
							runs++
							res, err := tx.Range(t.Context(), backend.RangeOptions{Key: []byte(key)})
							if err != nil {
								return err
							}
							if len(res.KVs) > 0 {
								reruns.Add(1)
								mu.Lock()
								examples = append(examples, fmt.Sprintf("%s: run %d finds the key written at revision %d by an earlier run", key, runs, res.KVs[0].ModRevision))
								mu.Unlock()
								return fmt.Errorf("%s exists", key)
							}
							_, err = backendtest.ApplyOps(t.Context(), tx, backendtest.Put(key, "v"))
							return err
						})
						if err != nil {
							failed.Add(1)
						} else {
							ok.Add(1)
						}
					}
				})
			}
			for ctx.Err() == nil {
				dbtest.KillConnections(t, u)
				select {
				case <-time.After(25 * time.Millisecond): // fault pacing, not synchronisation
				case <-ctx.Done():
				}
			}
			wg.Wait()
			t.Logf("%d updates committed, %d failed, %d functions re-run after their commit", ok.Load(), failed.Load(), reruns.Load())
			for i, ex := range examples {
				if i == 5 {
					break
				}
				t.Errorf("re-run after commit: %s", ex)
			}
		})
	}
}

// TestWatchSurvivesConnectionLoss is the minimal form of the watch
// interruptions TestLinearizableWithConnectionLoss logs: watches created
// while the database drops the store's connections. A watch the server
// ends with a non-retryable error (codes.Unknown "reading revision:
// invalid connection", from the backend read at watch creation or
// catch-up) surfaces to the application, where etcd would have kept
// the watch (clientv3 retries Unavailable transparently). Fixed by
// mapping connection errors to Unavailable; fails unless
// -linearize.strict-watch=false.
func TestWatchSurvivesConnectionLoss(t *testing.T) {
	for _, engine := range dbtest.Engines[1:] {
		t.Run(engine.Name, func(t *testing.T) {
			u := engine.NewBackend(t)
			srv := dbtest.StartStore(t, u, nil)
			cli, err := newClient(srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			for i := range 20 {
				if _, err := cli.Put(t.Context(), fmt.Sprintf("k%d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			ctx, stop := context.WithTimeout(t.Context(), 2*time.Second)
			defer stop()
			var wg sync.WaitGroup
			var created, ended atomic.Int64
			var mu sync.Mutex
			var examples []string
			for range 4 {
				wg.Go(func() {
					for ctx.Err() == nil {
						wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
						for resp := range cli.Watch(wctx, "k", clientv3.WithPrefix(), clientv3.WithRev(2)) {
							if err := resp.Err(); err != nil {
								if wctx.Err() == nil {
									ended.Add(1)
									mu.Lock()
									examples = append(examples, err.Error())
									mu.Unlock()
								}
								break
							}
							if len(resp.Events) > 0 {
								created.Add(1)
								break
							}
						}
						cancel()
					}
				})
			}
			for ctx.Err() == nil {
				dbtest.KillConnections(t, u)
				select {
				case <-time.After(25 * time.Millisecond): // fault pacing, not synchronisation
				case <-ctx.Done():
				}
			}
			wg.Wait()
			t.Logf("%d watches delivered events, %d ended by the server with an error", created.Load(), ended.Load())
			for i, ex := range examples {
				if i == 3 {
					break
				}
				if *flagStrict {
					t.Errorf("watch ended: %s", ex)
				} else {
					t.Logf("watch ended (known issue): %s", ex)
				}
			}
		})
	}
}

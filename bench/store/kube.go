package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// KubeResult is the Kubernetes-shaped load: what kube-apiserver sends to
// its store for creates, updates, paginated lists and one watch.
type KubeResult struct {
	Objects      int          `json:"objects"`
	Writers      int          `json:"writers"`
	CreatesPerS  float64      `json:"creates_per_s"`
	Create       latencyStats `json:"create"`
	UpdatesPerS  float64      `json:"updates_per_s"`
	Update       latencyStats `json:"update"`
	Conflicts    int64        `json:"conflicts"` // update txns that took the else branch and were retried
	List         latencyStats `json:"list"`      // one full paginated list of every object
	ListObjPerS  float64      `json:"list_objects_per_s"`
	Page         latencyStats `json:"page"`
	WatchLag     latencyStats `json:"watch_lag"` // from the writer's acknowledgement to the event at the watcher
	WatchEvents  int          `json:"watch_events"`
	WatchMissing int          `json:"watch_missing"`
	WatchDup     int          `json:"watch_duplicates"`
	WatchOrder   int          `json:"watch_out_of_order"`
	CrossInst    bool         `json:"cross_instance"` // watch on another instance than the writes
}

const kubePrefix = "/registry/benchobjects/"

func kubeKey(i int) string {
	return fmt.Sprintf("%sns-%02d/object-%06d", kubePrefix, i%20, i)
}

// prefixEnd is clientv3.GetPrefixRangeEnd for a plain string prefix.
func prefixEnd(p string) string { return clientv3.GetPrefixRangeEnd(p) }

type revKey struct {
	key string
	rev int64
}

// kubeWatcher records when each (key, mod revision) arrives.
type kubeWatcher struct {
	mu       sync.Mutex
	got      map[revKey]time.Time
	dups     int
	order    int
	lastRev  int64
	count    int
	notify   chan struct{}
	canceled error
}

func (w *kubeWatcher) run(ctx context.Context, wch clientv3.WatchChan) {
	for resp := range wch {
		now := time.Now()
		if err := resp.Err(); err != nil {
			w.mu.Lock()
			w.canceled = err
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		for _, ev := range resp.Events {
			rk := revKey{string(ev.Kv.Key), ev.Kv.ModRevision}
			if _, ok := w.got[rk]; ok {
				w.dups++
				continue
			}
			if ev.Kv.ModRevision < w.lastRev {
				w.order++
			}
			w.lastRev = ev.Kv.ModRevision
			w.got[rk] = now
			w.count++
		}
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// runKube runs the Kubernetes-shaped load: writes through writeEP, the
// watch on watchEP (another instance for SQL targets).
//
// afterLists, if not nil, is called once the measured lists are done with a
// function that runs more lists (not measured).
func runKube(ctx context.Context, s Sizes, writeEP, watchEP string, afterLists func(list func(context.Context) error) error) (*KubeResult, error) {
	res := &KubeResult{Objects: s.KubeObjects, Writers: s.KubeClients, CrossInst: writeEP != watchEP}
	clients := make([]*clientv3.Client, s.KubeConns)
	for i := range clients {
		c, err := newClient(writeEP)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	wcli, err := newClient(watchEP)
	if err != nil {
		return nil, err
	}
	defer wcli.Close()

	// The watch starts before the first write, from "now", with prev_kv as
	// kube-apiserver's watch cache asks for it.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	w := &kubeWatcher{got: map[revKey]time.Time{}, notify: make(chan struct{}, 1)}
	wch := wcli.Watch(wctx, kubePrefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	select {
	case resp, ok := <-wch:
		if !ok || resp.Err() != nil || !resp.Created {
			return nil, fmt.Errorf("creating watch: %v", resp.Err())
		}
	case <-time.After(30 * time.Second):
		return nil, errors.New("creating watch: no created response in 30s")
	}
	var wdone sync.WaitGroup
	wdone.Add(1)
	go func() { defer wdone.Done(); w.run(wctx, wch) }()

	raw := make([]byte, s.KubeValueSize)
	_, _ = rand.Read(raw)
	value := string(raw)

	var ackMu sync.Mutex
	acks := make(map[revKey]time.Time, 2*s.KubeObjects)
	modRevs := make([]int64, s.KubeObjects)

	// Creates: txn(mod_revision(key) == 0) then put, no else — kube's create.
	createLat, elapsed, err := parallel(ctx, s.KubeObjects, s.KubeClients, func(worker, i int) error {
		cli := clients[worker%len(clients)]
		key := kubeKey(i)
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value)).
			Commit()
		if err != nil {
			return fmt.Errorf("create %s: %w", key, err)
		}
		now := time.Now()
		if !resp.Succeeded {
			return fmt.Errorf("create %s: already exists", key)
		}
		modRevs[i] = resp.Header.Revision
		ackMu.Lock()
		acks[revKey{key, resp.Header.Revision}] = now
		ackMu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Create = summarize(createLat)
	res.CreatesPerS = float64(s.KubeObjects) / elapsed.Seconds()

	// Updates: txn(mod_revision == X) then put else get — GuaranteedUpdate.
	var conflicts atomic.Int64
	updateLat, elapsed, err := parallel(ctx, s.KubeObjects, s.KubeClients, func(worker, i int) error {
		cli := clients[worker%len(clients)]
		key := kubeKey(i)
		rev := modRevs[i]
		updated := "v2" + value[2:] // a new version differs from the old one
		for attempt := 0; ; attempt++ {
			resp, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
				Then(clientv3.OpPut(key, updated)).
				Else(clientv3.OpGet(key)).
				Commit()
			if err != nil {
				return fmt.Errorf("update %s: %w", key, err)
			}
			now := time.Now()
			if resp.Succeeded {
				ackMu.Lock()
				acks[revKey{key, resp.Header.Revision}] = now
				ackMu.Unlock()
				return nil
			}
			conflicts.Add(1)
			if attempt >= 5 {
				return fmt.Errorf("update %s: still conflicting after %d attempts", key, attempt+1)
			}
			rr := resp.Responses[0].GetResponseRange()
			if rr == nil || len(rr.Kvs) == 0 {
				return fmt.Errorf("update %s: else branch returned no object", key)
			}
			rev = rr.Kvs[0].ModRevision
		}
	})
	if err != nil {
		return nil, err
	}
	res.Update = summarize(updateLat)
	res.UpdatesPerS = float64(s.KubeObjects) / elapsed.Seconds()
	res.Conflicts = conflicts.Load()

	// Wait (polling on the watcher's progress) until every acknowledged
	// write has arrived, or nothing new has arrived for 15 s.
	expected := len(acks)
	deadline := time.NewTimer(15 * time.Second)
	for {
		w.mu.Lock()
		n, cerr := w.count, w.canceled
		w.mu.Unlock()
		if n >= expected || cerr != nil {
			break
		}
		select {
		case <-w.notify:
			if !deadline.Stop() {
				<-deadline.C
			}
			deadline.Reset(15 * time.Second)
			continue
		case <-deadline.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		break
	}
	wcancel()
	wdone.Wait()
	var lags []time.Duration
	w.mu.Lock()
	for rk, ack := range acks {
		got, ok := w.got[rk]
		if !ok {
			res.WatchMissing++
			continue
		}
		lags = append(lags, max(0, got.Sub(ack)))
	}
	res.WatchEvents = w.count
	res.WatchDup = w.dups
	res.WatchOrder = w.order
	if w.canceled != nil {
		slog.Warn("kube watch ended with an error", "err", w.canceled)
	}
	w.mu.Unlock()
	res.WatchLag = summarize(lags)

	listLat, pages, elapsed, err := listObjects(ctx, clients, s, s.KubeLists)
	if err != nil {
		return nil, err
	}
	res.List = summarize(listLat)
	res.Page = summarize(pages)
	res.ListObjPerS = float64(s.KubeObjects*s.KubeLists) / elapsed.Seconds()
	if afterLists != nil {
		// Lists again (not measured) for as long as the hook wants, e.g.
		// while a CPU profile is taken.
		err := afterLists(func(ctx context.Context) error {
			_, _, _, err := listObjects(ctx, clients, s, s.KubeListers)
			return err
		})
		if err != nil {
			slog.Warn("after-lists hook failed", "err", err)
		}
	}
	return res, nil
}

// listObjects runs n full paginated lists on s.KubeListers goroutines, as
// kube-apiserver sends them: limit PageSize, the first page at the current
// revision, the next ones from the last key at the first page's revision.
// It returns each list's and each page's latency and the wall time.
func listObjects(ctx context.Context, clients []*clientv3.Client, s Sizes, n int) (lists, pages []time.Duration, elapsed time.Duration, err error) {
	var pageMu sync.Mutex
	lists, elapsed, err = parallel(ctx, n, s.KubeListers, func(worker, _ int) error {
		cli := clients[worker%len(clients)]
		end := prefixEnd(kubePrefix)
		key := kubePrefix
		var rev int64
		total := 0
		var mine []time.Duration
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.KubePageSize))}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			st := time.Now()
			resp, err := cli.Get(ctx, key, opts...)
			if err != nil {
				return fmt.Errorf("list page from %s: %w", key, err)
			}
			mine = append(mine, time.Since(st))
			if rev == 0 {
				rev = resp.Header.Revision
			}
			total += len(resp.Kvs)
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		pageMu.Lock()
		pages = append(pages, mine...)
		pageMu.Unlock()
		if total != s.KubeObjects {
			return fmt.Errorf("list returned %d objects, want %d", total, s.KubeObjects)
		}
		return nil
	})
	return lists, pages, elapsed, err
}

// parallel runs fn for i in [0,n) on `workers` goroutines and returns each
// call's latency and the wall time. The first error stops the rest.
func parallel(ctx context.Context, n, workers int, fn func(worker, i int) error) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				st := time.Now()
				if err := fn(w, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				lat[i] = time.Since(st)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return lat, elapsed, firstErr
}

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// putLoadNote explains why SQL targets use runPutLoad for the put runs.
const putLoadNote = "put runs use bench/store's own loader (same shape as `benchmark put`: 8-byte keys drawn from the key space, random values, one connection per client) because kine on PostgreSQL/MariaDB rejects the tool's binary keys (invalid UTF-8 / collation errors); its keys are printable (`%08x`)"

// runPutLoad mirrors `benchmark put --key-size 8 --sequential-keys=false`
// with printable keys and returns the same summary the tool prints. With
// distinct, the i-th put writes a key of its own instead of a random one.
func runPutLoad(ctx context.Context, ep string, total, clients, keySpace, valSize int, distinct bool) (*BenchSummary, error) {
	conns := make([]*clientv3.Client, clients)
	for i := range conns {
		c, err := newClient(ep)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	raw := make([]byte, valSize)
	_, _ = rand.Read(raw)
	value := string(raw)
	var mu sync.Mutex
	errs := map[string]int{}
	lat, elapsed, err := parallel(ctx, total, clients, func(worker, i int) error {
		key := fmt.Sprintf("%08x", mrand.IntN(keySpace))
		if distinct {
			key = fmt.Sprintf("d%d-%08x", clients, i)
		}
		if _, err := conns[worker].Put(ctx, key, value); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			errs[err.Error()]++
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s := &BenchSummary{TotalSecs: elapsed.Seconds(), RPS: float64(total) / elapsed.Seconds(), Percentiles: map[string]float64{}}
	if len(errs) > 0 {
		s.Errors = errs
	}
	secs := make([]float64, len(lat))
	for i, d := range lat {
		secs[i] = d.Seconds()
	}
	sort.Float64s(secs)
	for _, p := range []float64{10, 25, 50, 75, 90, 95, 99, 99.9} {
		s.Percentiles[fmt.Sprint(p)] = percentileOf(secs, p)
	}
	s.FastestSecs, s.SlowestSecs = secs[0], secs[len(secs)-1]
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	s.AverageSecs = (sum / time.Duration(len(lat))).Seconds()
	return s, nil
}

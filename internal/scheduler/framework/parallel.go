package framework

import (
	"context"
	"sync"
	"sync/atomic"
)

// Parallelizer runs a function over [0, n) on a fixed number of workers.
type Parallelizer struct {
	Workers int
}

// Until calls fn(i) for every i in [0, n), spread over the workers in
// chunks taken from a shared counter, and returns when all calls have
// returned or ctx is done (remaining indexes are then skipped).
func (p Parallelizer) Until(ctx context.Context, n int, fn func(i int)) {
	workers := p.Workers
	if workers < 1 {
		workers = 1
	}
	if n <= 0 {
		return
	}
	// Small chunks keep workers balanced when per-node cost varies; large
	// enough that the counter is not contended.
	chunk := n / (workers * 8)
	chunk = max(1, min(chunk, 256))
	if workers == 1 || n <= chunk {
		for i := range n {
			if i%64 == 0 && ctx.Err() != nil {
				return
			}
			fn(i)
		}
		return
	}
	workers = min(workers, (n+chunk-1)/chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := int(next.Add(int64(chunk))) - chunk
				if start >= n {
					return
				}
				for i := start; i < min(start+chunk, n); i++ {
					fn(i)
				}
			}
		})
	}
	wg.Wait()
}

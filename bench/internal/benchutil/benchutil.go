package benchutil

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Parallel runs fn(0..n-1) on workers goroutines and returns the first
// error (or the context's, if it ended first).
func Parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// Poll checks cond every interval until it holds or timeout passes.
func Poll(ctx context.Context, timeout, every time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

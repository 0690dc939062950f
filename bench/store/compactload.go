package main

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CompactResult is write latency at a steady rate with and without a
// compaction running: the issue's "compaction keeps the database size
// bounded without stalling writes".
type CompactResult struct {
	FillPuts    int          `json:"fill_puts"` // puts written before (history to drop)
	Keys        int          `json:"keys"`      // keys they went to
	Rate        int          `json:"rate"`      // offered puts/s during both measurements
	CompactRev  int64        `json:"compact_rev"`
	CompactSecs float64      `json:"compact_secs"` // Compact RPC (physical) duration
	Without     latencyStats `json:"without"`      // the same load, no compaction
	During      latencyStats `json:"during"`       // puts sent while Compact ran
	DuringPerS  float64      `json:"during_puts_per_s"`
	DBBefore    int64        `json:"db_size_before"` // Status.DbSize before compacting
	DBAfter     int64        `json:"db_size_after"`  // and once the load stopped
	Errors      int          `json:"errors"`
}

// compactWriters send the steady load of the compaction scenario.
const compactWriters = 20

// runCompact fills s.CompactFill puts over s.CompactKeys keys, measures
// puts at s.CompactRate per second for compactBaseline, then runs the
// same load while compacting away everything the fill superseded.
func runCompact(ctx context.Context, s Sizes, ep string) (*CompactResult, error) {
	res := &CompactResult{FillPuts: s.CompactFill, Keys: s.CompactKeys, Rate: s.CompactRate}
	conns := make([]*clientv3.Client, compactWriters)
	for i := range conns {
		c, err := newClient(ep)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	raw := make([]byte, s.PutValueSize)
	_, _ = rand.Read(raw)
	value := string(raw)
	key := func(i int) string { return fmt.Sprintf("/compact/%08d", i%s.CompactKeys) }
	if _, _, err := parallel(ctx, s.CompactFill, compactWriters, func(w, i int) error {
		_, err := conns[w].Put(ctx, key(i), value)
		return err
	}); err != nil {
		return nil, fmt.Errorf("filling history: %w", err)
	}
	st, err := conns[0].Status(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	res.CompactRev, res.DBBefore = st.Header.Revision, st.DbSize

	// Without compaction.
	samples, errs := paced(ctx, conns, s.CompactRate, compactBaseline, nil, key, value, s.CompactKeys)
	res.Errors += errs
	all := make([]time.Duration, len(samples))
	for i, sm := range samples {
		all[i] = sm.lat
	}
	res.Without = summarize(all)

	// With: compaction starts a second into the load; the load runs on
	// for a second after it returns.
	var cStart, cEnd time.Time
	var cErr error
	during := func(ctx context.Context) {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		cStart = time.Now()
		_, cErr = conns[0].Compact(ctx, res.CompactRev, clientv3.WithCompactPhysical())
		cEnd = time.Now()
		t.Reset(time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	samples, errs = paced(ctx, conns, s.CompactRate, 0, during, key, value, s.CompactKeys)
	res.Errors += errs
	if cErr != nil {
		return nil, fmt.Errorf("compacting to %d: %w", res.CompactRev, cErr)
	}
	if cStart.IsZero() {
		return nil, fmt.Errorf("compaction did not run: %w", ctx.Err())
	}
	res.CompactSecs = cEnd.Sub(cStart).Seconds()
	var in []time.Duration
	for _, sm := range samples {
		if !sm.at.Before(cStart) && sm.at.Before(cEnd) {
			in = append(in, sm.lat)
		}
	}
	res.During = summarize(in)
	if d := cEnd.Sub(cStart).Seconds(); d > 0 {
		res.DuringPerS = float64(len(in)) / d
	}
	if st, err := conns[0].Status(ctx, ep); err == nil {
		res.DBAfter = st.DbSize
	}
	return res, nil
}

// compactBaseline is how long the load without compaction runs.
const compactBaseline = 5 * time.Second

type sample struct {
	at  time.Time // when the put was sent
	lat time.Duration
}

// paced puts at rate per second through conns (each a writer on its own
// schedule) for dur, or for as long as during runs when it is not nil. A
// put that is late starts at once; the schedule does not slip (a stall
// shows as latency, not as fewer puts).
func paced(ctx context.Context, conns []*clientv3.Client, rate int, dur time.Duration, during func(context.Context),
	key func(int) string, value string, keys int) ([]sample, int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if during != nil {
		go func() {
			during(ctx)
			cancel()
		}()
	} else {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, dur)
		defer c()
	}
	interval := time.Duration(float64(time.Second) * float64(len(conns)) / float64(rate))
	var mu sync.Mutex
	var out []sample
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for w, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(interval * time.Duration(w) / time.Duration(len(conns)))
			var mine []sample
			bad := 0
			for {
				if d := time.Until(next); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
					}
				}
				if ctx.Err() != nil {
					break
				}
				next = next.Add(interval)
				at := time.Now()
				// The put itself is not cut short when the measurement
				// ends, so its latency is real.
				pctx, pc := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				_, err := c.Put(pctx, key(mrand.IntN(keys)), value)
				pc()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, sample{at: at, lat: time.Since(at)})
			}
			mu.Lock()
			out = append(out, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, errs
}

package cache

import (
	"context"
	"sync"
	"time"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// MetaSource reads the engine's committed revision and compaction
// revision in one round trip, seeing every commit acknowledged before the
// call began (see NewSQLMeta).
type MetaSource interface {
	Meta(ctx context.Context) (rev, compact int64, err error)
	Close() error
}

// viewMeta reads the revisions through an engine View: cheap for the
// embedded engine, two round trips on the SQL engines.
type viewMeta struct{ be backend.Backend }

func (m viewMeta) Meta(ctx context.Context) (rev, compact int64, err error) {
	err = m.be.View(ctx, func(tx backend.ReadTx) error {
		rev, compact = tx.Revision(), tx.CompactRevision()
		return nil
	})
	return rev, compact, err
}

func (viewMeta) Close() error { return nil }

// barrier coalesces concurrent Meta calls: a caller joins the next call
// to start, never one already running (which may have read the revision
// before the caller's read began), so every answer is as fresh as an own
// query would be.
type barrier struct {
	src     MetaSource
	timeout time.Duration

	mu      sync.Mutex
	running bool
	next    *metaCall
}

type metaCall struct {
	done         chan struct{}
	rev, compact int64
	err          error
}

// barrierTimeout bounds one shared Meta query.
const barrierTimeout = 10 * time.Second

func (b *barrier) wait(ctx context.Context) (rev, compact int64, err error) {
	b.mu.Lock()
	if b.next == nil {
		b.next = &metaCall{done: make(chan struct{})}
	}
	c := b.next
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.rev, c.compact, c.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// run serves queued callers until none is waiting. Its queries do not
// use any caller's context: one caller giving up must not fail the rest.
func (b *barrier) run() {
	for {
		b.mu.Lock()
		c := b.next
		b.next = nil
		if c == nil {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		c.rev, c.compact, c.err = b.src.Meta(ctx)
		cancel()
		close(c.done)
	}
}

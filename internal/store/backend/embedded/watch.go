package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/keelson-dev/keelson/internal/store/backend"
)

// maxQueuedEvents bounds a subscriber's backlog; a subscriber that falls
// further behind is dropped with errSlowSubscriber and must re-subscribe.
const maxQueuedEvents = 1 << 20

// replayChunk is how many revisions Watch reads from the log at a time
// while catching up.
const replayChunk = 512

var errSlowSubscriber = errors.New("watch subscriber fell too far behind")

// feed fans committed batches out to Watch subscribers without ever
// blocking the committer.
type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	mu      sync.Mutex
	batches [][]backend.Event
	queued  int
	err     error
	notify  chan struct{}
}

func (f *feed) init() { f.subs = map[*subscriber]struct{}{} }

func (f *feed) publish(events []backend.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		s.mu.Lock()
		if s.queued+len(events) > maxQueuedEvents {
			s.err = errSlowSubscriber
			s.batches = nil
			delete(f.subs, s)
		} else {
			s.batches = append(s.batches, events)
			s.queued += len(events)
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for s := range f.subs {
		s.mu.Lock()
		s.err = backend.ErrClosed
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	clear(f.subs)
}

func (f *feed) remove(s *subscriber) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
}

// Watch implements backend.Backend. It replays history after afterRev from
// the log, then delivers live batches; every revision reaches fn once, in
// order. It returns nil when ctx ends, ErrClosed when the engine closes,
// ErrCompacted if afterRev is below the compaction point. Live batches are
// shared between subscribers: fn must not modify them.
func (e *Engine) Watch(ctx context.Context, afterRev int64, fn func([]backend.Event)) error {
	s := &subscriber{notify: make(chan struct{}, 1)}
	e.feed.mu.Lock()
	if e.feed.closed {
		e.feed.mu.Unlock()
		return backend.ErrClosed
	}
	// Live batches above head go to s; everything up to head is replayed.
	head := e.committed.Load()
	e.feed.subs[s] = struct{}{}
	e.feed.mu.Unlock()
	defer e.feed.remove(s)

	last := max(afterRev, 0)
	for last < head {
		if ctx.Err() != nil {
			return nil
		}
		to := min(last+replayChunk, head)
		events, err := e.Events(ctx, last+1, to)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch replay: %w", err)
		}
		if len(events) > 0 {
			fn(events)
		}
		last = to
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.notify:
		}
		s.mu.Lock()
		batches, err := s.batches, s.err
		s.batches, s.queued = nil, 0
		s.mu.Unlock()
		for _, b := range batches {
			// Skip what replay already delivered (or what is at or below
			// afterRev); batches hold whole revisions, in order.
			i := 0
			for i < len(b) && b[i].KV.ModRevision <= last {
				i++
			}
			if i == len(b) {
				continue
			}
			fn(b[i:])
			last = b[len(b)-1].KV.ModRevision
		}
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
}

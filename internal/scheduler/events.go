package scheduler

import (
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

const (
	// eventPosters is how many event creations are in flight at once.
	eventPosters = 16
	// eventQueue bounds the events waiting to be created (about 1 KiB
	// each); beyond it new ones are dropped and logged.
	eventQueue = 16384
)

// asyncSink queues created events and posts them from eventPosters
// goroutines. client-go's broadcaster hands events to its sink one at a
// time and drops them once 1,000 wait; behind one request at a time, and
// behind the event client's rate limiter, a backlog bound at the binding
// client's burst (750 pods/s and more) outran the poster and most
// Scheduled events were dropped. Create therefore only queues and returns
// the event as sent (its name is made by the recorder, which is all the
// correlator needs for later patches). Updates and patches (repeated
// events, rare) stay synchronous.
type asyncSink struct {
	inner record.EventSink
	log   *slog.Logger
	queue chan *v1.Event
	wg    sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	dropped int
}

func newAsyncSink(inner record.EventSink, log *slog.Logger) *asyncSink {
	a := &asyncSink{inner: inner, log: log, queue: make(chan *v1.Event, eventQueue)}
	a.wg.Add(eventPosters)
	for range eventPosters {
		go func() {
			defer a.wg.Done()
			for e := range a.queue {
				if _, err := a.inner.Create(e); err != nil {
					a.log.Warn("posting event", "reason", e.Reason, "object", e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name, "err", err)
				}
			}
		}()
	}
	return a
}

func (a *asyncSink) Create(e *v1.Event) (*v1.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return e, nil
	}
	select {
	case a.queue <- e:
	default:
		a.dropped++
		if a.dropped == 1 || a.dropped%1000 == 0 {
			a.log.Warn("event queue full; events dropped", "dropped", a.dropped, "queue", eventQueue)
		}
	}
	return e, nil
}

func (a *asyncSink) Update(e *v1.Event) (*v1.Event, error) { return a.inner.Update(e) }

func (a *asyncSink) Patch(e *v1.Event, data []byte) (*v1.Event, error) {
	return a.inner.Patch(e, data)
}

// close stops taking events and waits up to d for the queued ones to be
// posted; it says whether they all were.
func (a *asyncSink) close(d time.Duration) bool {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

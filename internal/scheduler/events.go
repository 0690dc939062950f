package scheduler

import (
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

// eventPosters bounds the event creations in flight at once.
const eventPosters = 16

// asyncSink posts created events from up to eventPosters goroutines.
// client-go's broadcaster hands events to its sink one at a time and
// drops them once 1,000 are queued; behind one request at a time a
// backlog bound at the client's burst (750 pods/s and more) outran the
// poster and most Scheduled events were dropped. Creating is therefore
// asynchronous: Create returns the event as sent (its name is made by the
// recorder, which is all the correlator needs for later patches) and
// blocks only while eventPosters creations are in flight. Updates and
// patches (repeated events, rare) stay synchronous.
type asyncSink struct {
	inner record.EventSink
	log   *slog.Logger
	slots chan struct{}
	wg    sync.WaitGroup
}

func newAsyncSink(inner record.EventSink, log *slog.Logger) *asyncSink {
	return &asyncSink{inner: inner, log: log, slots: make(chan struct{}, eventPosters)}
}

func (a *asyncSink) Create(e *v1.Event) (*v1.Event, error) {
	a.slots <- struct{}{}
	a.wg.Add(1)
	go func() {
		defer func() { <-a.slots; a.wg.Done() }()
		if _, err := a.inner.Create(e); err != nil {
			a.log.Warn("posting event", "reason", e.Reason, "object", e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name, "err", err)
		}
	}()
	return e, nil
}

func (a *asyncSink) Update(e *v1.Event) (*v1.Event, error) { return a.inner.Update(e) }

func (a *asyncSink) Patch(e *v1.Event, data []byte) (*v1.Event, error) {
	return a.inner.Patch(e, data)
}

// drain waits up to d for the creations in flight; it says whether they
// all ended.
func (a *asyncSink) drain(d time.Duration) bool {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

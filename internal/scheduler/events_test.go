package scheduler

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
)

// slowSink records created events; each Create waits for release.
type slowSink struct {
	release  chan struct{}
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	mu       sync.Mutex
	names    map[string]bool
}

func (s *slowSink) Create(e *v1.Event) (*v1.Event, error) {
	n := s.inFlight.Add(1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	<-s.release
	s.inFlight.Add(-1)
	s.mu.Lock()
	s.names[e.InvolvedObject.Name] = true
	s.mu.Unlock()
	return e, nil
}
func (s *slowSink) Update(e *v1.Event) (*v1.Event, error)          { return e, nil }
func (s *slowSink) Patch(e *v1.Event, _ []byte) (*v1.Event, error) { return e, nil }
func (s *slowSink) count() int                                     { s.mu.Lock(); defer s.mu.Unlock(); return len(s.names) }

func TestAsyncSinkQueuesAndDrains(t *testing.T) {
	inner := &slowSink{release: make(chan struct{}), names: map[string]bool{}}
	sink := newAsyncSink(inner, slog.New(slog.DiscardHandler))
	// Creations return at once while the server is slow, far beyond the
	// posters in flight.
	const n = 10 * eventPosters
	for i := range n {
		done := make(chan struct{})
		go func() {
			_, _ = sink.Create(&v1.Event{InvolvedObject: v1.ObjectReference{Name: "p" + strconv.Itoa(i)}})
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("creation %d blocked on a slow server", i)
		}
	}
	if sink.close(10 * time.Millisecond) {
		t.Fatal("close reported every event posted while the server held them")
	}
	close(inner.release)
	if !sink.close(5 * time.Second) {
		t.Fatal("queued events were not posted")
	}
	if got := inner.count(); got != n {
		t.Fatalf("posted %d events, want %d", got, n)
	}
	if m := inner.maxSeen.Load(); m > eventPosters {
		t.Fatalf("%d creations in flight, bound is %d", m, eventPosters)
	}
	// After close, creations are ignored rather than panicking.
	if _, err := sink.Create(&v1.Event{}); err != nil {
		t.Fatal(err)
	}
}

// TestAsyncSinkKeepsBacklogEvents records events for 3,000 pods at a
// binding-like pace through client-go's broadcaster against a server that
// takes 2 ms per event: one request at a time (500/s) fell behind and the
// broadcaster dropped events; with the async sink none is lost.
func TestAsyncSinkKeepsBacklogEvents(t *testing.T) {
	inner := &slowSink{release: make(chan struct{}), names: map[string]bool{}}
	close(inner.release)
	timed := &delaySink{inner: inner, d: 2 * time.Millisecond}
	sink := newAsyncSink(timed, slog.New(slog.DiscardHandler))
	b := record.NewBroadcaster()
	b.StartRecordingToSink(sink)
	rec := b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "test"})
	const pods = 3000
	for i := range pods {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod-" + strconv.Itoa(i), UID: "u"}}
		rec.Eventf(pod, v1.EventTypeNormal, "Scheduled", "Successfully assigned ns/%s to node", pod.Name)
		if i%100 == 99 {
			time.Sleep(100 * time.Millisecond) // 1,000 events/s
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for inner.count() < pods && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	b.Shutdown()
	if got := inner.count(); got != pods {
		t.Fatalf("%d of %d events posted", got, pods)
	}
}

type delaySink struct {
	inner record.EventSink
	d     time.Duration
}

func (s *delaySink) Create(e *v1.Event) (*v1.Event, error) {
	time.Sleep(s.d)
	return s.inner.Create(e)
}
func (s *delaySink) Update(e *v1.Event) (*v1.Event, error)          { return e, nil }
func (s *delaySink) Patch(e *v1.Event, _ []byte) (*v1.Event, error) { return e, nil }

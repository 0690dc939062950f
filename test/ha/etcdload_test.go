package ha

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
)

// newClient returns an etcd client for endpoints, closed when the test ends.
func newClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// poll calls cond every 50 ms until it returns true; after timeout it fails
// the test with cond's last error.
func poll(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last: %v)", what, err, last)
	}
}

// event is one watch event as a watcher saw it.
type event struct {
	key    string
	modRev int64
	put    bool
}

// watcher records the events under a prefix that one store instance
// delivers, checking order as they arrive.
type watcher struct {
	name string

	mu     sync.Mutex
	events []event
	errs   []string
	last   int64 // highest revision seen (events and progress)
}

func (w *watcher) run(ctx context.Context, c *clientv3.Client, prefix string, fromRev int64) {
	ch := c.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(fromRev))
	for resp := range ch {
		w.mu.Lock()
		if err := resp.Err(); err != nil {
			// The client resumes a broken stream by itself, from the
			// revision after the last one delivered; an error here
			// (compaction, cancellation by the server) ends the watch.
			w.errs = append(w.errs, err.Error())
		}
		for _, ev := range resp.Events {
			e := event{key: string(ev.Kv.Key), modRev: ev.Kv.ModRevision, put: ev.Type == mvccpb.PUT}
			if e.modRev <= w.last {
				w.errs = append(w.errs, fmt.Sprintf("event %s at revision %d after revision %d (out of order or duplicate)", e.key, e.modRev, w.last))
			}
			w.last = max(w.last, e.modRev)
			w.events = append(w.events, e)
		}
		w.mu.Unlock()
	}
	if ctx.Err() == nil {
		w.mu.Lock()
		w.errs = append(w.errs, "watch channel closed")
		w.mu.Unlock()
	}
}

// seenUpTo returns the highest revision delivered and the errors so far.
func (w *watcher) seenUpTo() (int64, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, slices.Clone(w.errs)
}

// etcdLoad writes unique keys through one client from several goroutines
// and watches the prefix through every store instance.
type etcdLoad struct {
	prefix   string
	watchers []*watcher

	mu     sync.Mutex
	acked  map[string]int64 // key → revision of its acknowledged put
	failed atomic.Int64

	// Linearizable reads: some acknowledged puts are read back through
	// each instance (a checker per instance, so that a dead one does not
	// slow the writers).
	checks     []chan string
	checked    atomic.Int64
	staleMu    sync.Mutex
	staleReads []string

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLoad starts writers goroutines writing through writeClient and one
// watcher per endpoint (each with its own client pinned to that instance),
// all from the current revision.
func startLoad(t *testing.T, writeClient *clientv3.Client, endpoints []string, writers int) *etcdLoad {
	t.Helper()
	ctx := t.Context()
	l := &etcdLoad{prefix: "/ha/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/", acked: map[string]int64{}, stop: make(chan struct{})}
	resp, err := writeClient.Get(ctx, "/ha-start")
	if err != nil {
		t.Fatalf("reading the start revision: %v", err)
	}
	from := resp.Header.Revision + 1
	wctx, cancel := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	t.Cleanup(func() { cancel(); wwg.Wait() })
	for i, ep := range endpoints {
		w := &watcher{name: "store-" + strconv.Itoa(i)}
		l.watchers = append(l.watchers, w)
		c := newClient(t, ep)
		wwg.Go(func() { w.run(wctx, c, l.prefix, from) })
		ch := make(chan string, 1024)
		l.checks = append(l.checks, ch)
		rc := newClient(t, ep)
		wwg.Go(func() { l.readBack(wctx, i, rc, ch) })
	}
	for w := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				key := fmt.Sprintf("%sw%02d/%06d", l.prefix, w, i)
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := writeClient.Put(pctx, key, strconv.Itoa(i))
				cancel()
				if err != nil {
					// Unknown outcome: the put may or may not have
					// committed. Only acknowledged puts are checked.
					l.failed.Add(1)
					continue
				}
				l.mu.Lock()
				l.acked[key] = resp.Header.Revision
				l.mu.Unlock()
				if i%4 == 0 {
					for _, ch := range l.checks {
						select {
						case ch <- key:
						default: // the checker is behind (its instance may be down)
						}
					}
				}
			}
		})
	}
	t.Cleanup(l.stopWriters)
	return l
}

// readBack reads each key sent on ch through one instance: a put that was
// acknowledged before the read began must be visible (linearizable reads
// across instances). A read that fails (the instance is down) proves
// nothing and is skipped.
func (l *etcdLoad) readBack(ctx context.Context, idx int, c *clientv3.Client, ch <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-ch:
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := c.Get(rctx, key)
			cancel()
			if err != nil {
				continue
			}
			l.checked.Add(1)
			if resp.Count != 1 {
				l.staleMu.Lock()
				l.staleReads = append(l.staleReads, fmt.Sprintf("store %d: acknowledged put %s not visible to a read at revision %d", idx, key, resp.Header.Revision))
				l.staleMu.Unlock()
			}
		}
	}
}

// ackedCount is the number of acknowledged puts.
func (l *etcdLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until n more puts than now are acknowledged.
func (l *etcdLoad) waitAcked(t *testing.T, what string, n int, timeout time.Duration) {
	t.Helper()
	target := l.ackedCount() + n
	poll(t, what, timeout, func(context.Context) (bool, error) {
		got := l.ackedCount()
		return got >= target, fmt.Errorf("%d of %d puts acknowledged, %d failed", got, target, l.failed.Load())
	})
}

func (l *etcdLoad) stopWriters() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// verify stops the writers and checks the outcome through every endpoint:
// each instance's linearizable read holds every acknowledged put (at its
// revision), and each instance's watch delivered exactly the puts present,
// each once, in revision order.
func (l *etcdLoad) verify(t *testing.T, endpoints []string) {
	t.Helper()
	l.stopWriters()
	l.mu.Lock()
	acked := maps.Clone(l.acked)
	l.mu.Unlock()

	var final map[string]int64
	var finalRev int64
	for i, ep := range endpoints {
		c := newClient(t, ep)
		var resp *clientv3.GetResponse
		poll(t, fmt.Sprintf("a read through store %d", i), 30*time.Second, func(ctx context.Context) (bool, error) {
			var err error
			resp, err = c.Get(ctx, l.prefix, clientv3.WithPrefix())
			return err == nil, err
		})
		got := map[string]int64{}
		for _, kv := range resp.Kvs {
			if kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
				// Each key is put once: a second version means one put
				// was applied twice.
				t.Errorf("store %d: %s has version %d (created at %d, modified at %d); it was put once", i, kv.Key, kv.Version, kv.CreateRevision, kv.ModRevision)
			}
			got[string(kv.Key)] = kv.ModRevision
			finalRev = max(finalRev, kv.ModRevision)
		}
		if int64(len(got)) != resp.Count {
			t.Errorf("store %d: %d keys but count %d", i, len(got), resp.Count)
		}
		missing := 0
		for k, rev := range acked {
			switch have, ok := got[k]; {
			case !ok:
				missing++
				if missing <= 5 {
					t.Errorf("store %d: acknowledged put %s (revision %d) is missing", i, k, rev)
				}
			case have != rev:
				t.Errorf("store %d: %s has revision %d, its put was acknowledged at %d", i, k, have, rev)
			}
		}
		if missing > 0 {
			t.Errorf("store %d: %d of %d acknowledged puts missing", i, missing, len(acked))
		}
		if final == nil {
			final = got
		} else if !maps.Equal(final, got) {
			t.Errorf("store %d returns %d keys, store 0 returned %d (or different revisions)", i, len(got), len(final))
		}
	}

	for _, w := range l.watchers {
		poll(t, "the watch through "+w.name+" to reach revision "+strconv.FormatInt(finalRev, 10), 60*time.Second, func(context.Context) (bool, error) {
			last, errs := w.seenUpTo()
			if len(errs) > 0 {
				return false, fmt.Errorf("watch errors: %v", errs)
			}
			return last >= finalRev, fmt.Errorf("at revision %d", last)
		})
		w.mu.Lock()
		seen := map[string]int{}
		for _, e := range w.events {
			seen[e.key]++
			if !e.put {
				t.Errorf("%s: unexpected delete of %s", w.name, e.key)
			}
			if rev, ok := final[e.key]; !ok || rev != e.modRev {
				t.Errorf("%s: event %s at revision %d, but the store holds revision %d", w.name, e.key, e.modRev, rev)
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s: %s delivered %d times", w.name, k, n)
			}
		}
		if len(seen) != len(final) {
			t.Errorf("%s: watch delivered %d keys, the store holds %d", w.name, len(seen), len(final))
		}
		w.mu.Unlock()
	}
	l.staleMu.Lock()
	for _, s := range l.staleReads {
		t.Error(s)
	}
	l.staleMu.Unlock()
	if l.checked.Load() == 0 {
		t.Error("no acknowledged put was read back through an instance")
	}
	t.Logf("%d puts acknowledged, %d failed (unknown outcome), %d keys stored up to revision %d; %d read back through single instances; %d watchers complete",
		len(acked), l.failed.Load(), len(final), finalRev, l.checked.Load(), len(l.watchers))
}

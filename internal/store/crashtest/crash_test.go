package crashtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// binary returns the keelson binary to run.
func binary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KEELSON_BIN"); dir != "" {
		p := filepath.Join(dir, "keelson")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("KEELSON_BIN is set but: %v", err)
		}
		return p
	}
	p := filepath.Join(t.TempDir(), "keelson")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", p, "github.com/keelson-dev/keelson/cmd/keelson")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building keelson: %v\n%s", err, out)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// store runs `keelson store` processes on one data dir and address.
type store struct {
	t                   *testing.T
	bin, dir, addr, met string
	cmd                 *exec.Cmd
	exited              chan struct{}
	logs                *os.File
}

func (s *store) start() {
	t := s.t
	t.Helper()
	s.cmd = exec.Command(s.bin, "store", "--listen", s.addr, "--data-dir", s.dir, "--metrics-listen", s.met, "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting keelson store: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { _ = cmd.Wait(); close(ch) }(s.cmd, s.exited)
	// Ready when /readyz answers 200 (it reads from the backend).
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.met+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("keelson store exited while starting (log in %s)", s.logs.Name())
		case <-ctx.Done():
			t.Fatalf("keelson store not ready: %v", ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *store) kill() {
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.exited
}

func (s *store) stop() {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	<-s.exited
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Errorf("keelson store exited with %d after SIGTERM", code)
	}
}

// keyState is what a writer knows about one of its keys.
type keyState struct {
	value          string
	mod, create    int64
	version        int64
	uncertainValue string // a write that got no answer (server killed)
}

// ack is one acknowledged write.
type ack struct {
	key, value string
	rev        int64
}

// writer owns keys w<g>/k<j> and writes them sequentially, alternately
// with a plain Put and with a Txn that compares the mod revision it last
// saw (as kube-apiserver updates). A write that fails is uncertain: it is
// resolved by reading the key once the store is back.
type writer struct {
	timeout time.Duration
	g       int
	keys    []keyState
	acks    []ack
	n       int
}

func (w *writer) key(j int) string { return fmt.Sprintf("w%02d/k%02d", w.g, j) }

// step does one write; it returns an error if the write got no answer.
func (w *writer) step(ctx context.Context, c *clientv3.Client) error {
	j := w.n % len(w.keys)
	ks := &w.keys[j]
	key := w.key(j)
	if ks.uncertainValue != "" {
		if err := w.resolve(ctx, c, j); err != nil {
			return err
		}
	}
	value := fmt.Sprintf("g%d-n%d", w.g, w.n)
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var rev int64
	if w.n%2 == 0 {
		resp, err := c.Put(ctx, key, value)
		if err != nil {
			ks.uncertainValue = value
			return err
		}
		rev = resp.Header.Revision
	} else {
		resp, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", ks.mod)).
			Then(clientv3.OpPut(key, value)).
			Commit()
		if err != nil {
			ks.uncertainValue = value
			return err
		}
		if !resp.Succeeded {
			return fmt.Errorf("txn on %s: mod revision moved from %d unseen", key, ks.mod)
		}
		rev = resp.Header.Revision
	}
	w.applied(j, value, rev)
	w.acks = append(w.acks, ack{key: key, value: value, rev: rev})
	w.n++
	return nil
}

func (w *writer) applied(j int, value string, rev int64) {
	ks := &w.keys[j]
	if ks.version == 0 {
		ks.create = rev
	}
	ks.value, ks.mod, ks.version, ks.uncertainValue = value, rev, ks.version+1, ""
}

// resolve finds out whether an unanswered write to key j was applied.
func (w *writer) resolve(ctx context.Context, c *clientv3.Client, j int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, w.key(j))
	if err != nil {
		return err
	}
	ks := &w.keys[j]
	if len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == ks.uncertainValue {
		w.applied(j, ks.uncertainValue, resp.Kvs[0].ModRevision)
	} else {
		ks.uncertainValue = ""
	}
	w.n++ // the uncertain value is never written again
	return nil
}

func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts keelson store processes")
	}
	const (
		writers  = 8
		keysEach = 10
		rounds   = 4   // kills
		perRound = 400 // acknowledged writes between kills
		tail     = 200 // writes after the last restart
	)
	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(dir, "store.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	s := &store{t: t, bin: binary(t), dir: filepath.Join(dir, "data"), addr: freeAddr(t), met: freeAddr(t), logs: logs}
	s.start()
	defer func() {
		select {
		case <-s.exited:
		default:
			s.kill()
		}
	}()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithBlock()}, //nolint:staticcheck // wait for the first connection
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()

	// The watch opened before any crash; the client resumes it after each
	// restart from the revision after the last one it delivered.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wmu sync.Mutex
	var watched []*clientv3.Event
	var watchErr error
	watchDone := make(chan struct{})
	wch := c.Watch(wctx, "w", clientv3.WithPrefix(), clientv3.WithRev(1))
	go func() {
		defer close(watchDone)
		for resp := range wch {
			wmu.Lock()
			if err := resp.Err(); err != nil && !resp.Canceled {
				watchErr = err
			}
			watched = append(watched, resp.Events...)
			wmu.Unlock()
		}
	}()

	ws := make([]*writer, writers)
	for g := range ws {
		// A short timeout while the server may be dead: writes issued after
		// a kill fail within a second instead of waiting for the restart.
		ws[g] = &writer{g: g, keys: make([]keyState, keysEach), timeout: time.Second}
	}
	// run drives every writer until total acknowledged writes in this round
	// reach n, or until each writer's write fails (the server died).
	run := func(n int, kill func()) {
		var mu sync.Mutex
		count := 0
		var killOnce sync.Once
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() {
				for {
					err := w.step(ctx, c)
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						if kill == nil {
							t.Errorf("writer %d: %v", w.g, err)
						}
						return // the server is gone; resume after restart
					}
					mu.Lock()
					count++
					done := count >= n
					mu.Unlock()
					if done {
						if kill == nil {
							return
						}
						killOnce.Do(kill)
					}
				}
			})
		}
		wg.Wait()
	}
	for round := range rounds {
		run(perRound, s.kill)
		s.start()
		t.Logf("round %d: killed and restarted", round)
	}
	// No kill in the last round: every write must succeed; a long timeout
	// keeps a slow fsync on a busy machine from leaving a write in doubt.
	for _, w := range ws {
		w.timeout = 10 * time.Second
	}
	run(tail, nil)
	if t.Failed() {
		return
	}

	// Every acknowledged write, and every resolved one, is the key's state.
	var latest int64
	resp, err := c.Get(ctx, "w", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	latest = resp.Header.Revision
	kvs := map[string][4]int64{}
	vals := map[string]string{}
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = [4]int64{kv.CreateRevision, kv.ModRevision, kv.Version, 0}
		vals[string(kv.Key)] = string(kv.Value)
	}
	acked := 0
	byRev := map[int64]ack{}
	for _, w := range ws {
		for j := range w.keys {
			ks := w.keys[j]
			k := w.key(j)
			if ks.uncertainValue != "" {
				t.Fatalf("%s: unresolved write at the end", k)
			}
			g, ok := kvs[k]
			if !ok || vals[k] != ks.value || g[0] != ks.create || g[1] != ks.mod || g[2] != ks.version {
				t.Errorf("%s: store has %q create %d mod %d version %d; acknowledged %q create %d mod %d version %d",
					k, vals[k], g[0], g[1], g[2], ks.value, ks.create, ks.mod, ks.version)
			}
		}
		for _, a := range w.acks {
			if prev, dup := byRev[a.rev]; dup {
				t.Errorf("revision %d acknowledged twice: %v and %v", a.rev, prev, a)
			}
			byRev[a.rev] = a
			acked++
		}
	}

	// A fresh watch from the start: the history is gapless (one write per
	// revision) and holds every acknowledged write at its revision.
	history := watchAll(t, c, latest)
	for i, ev := range history {
		if want := int64(i) + 2; ev.Kv.ModRevision != want {
			t.Fatalf("history event %d at revision %d, want %d (gap or duplicate)", i, ev.Kv.ModRevision, want)
		}
	}
	if int64(len(history)) != latest-1 {
		t.Fatalf("history holds %d events up to revision %d", len(history), latest)
	}
	for rev, a := range byRev {
		if rev < 2 || rev > latest {
			t.Errorf("acknowledged %s=%q at revision %d, store is at %d", a.key, a.value, rev, latest)
			continue
		}
		ev := history[rev-2]
		if ev.Type != clientv3.EventTypePut || string(ev.Kv.Key) != a.key || string(ev.Kv.Value) != a.value {
			t.Errorf("acknowledged %s=%q at %d, history has %s=%q", a.key, a.value, rev, ev.Kv.Key, ev.Kv.Value)
		}
	}

	// The long-lived watch saw exactly the same events, once each.
	waitWatched := func() int {
		wmu.Lock()
		defer wmu.Unlock()
		return len(watched)
	}
	// Progress is polled: the watcher gets the tail asynchronously.
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waitWatched() < len(history) {
		select {
		case <-deadline.C:
			t.Fatalf("watch opened before the crashes delivered %d of %d events", waitWatched(), len(history))
		case <-tick.C:
		}
	}
	wcancel()
	<-watchDone
	if watchErr != nil {
		t.Fatalf("watch: %v", watchErr)
	}
	if len(watched) != len(history) {
		t.Fatalf("watch delivered %d events, history has %d", len(watched), len(history))
	}
	for i := range watched {
		a, b := watched[i], history[i]
		if a.Kv.ModRevision != b.Kv.ModRevision || string(a.Kv.Key) != string(b.Kv.Key) || string(a.Kv.Value) != string(b.Kv.Value) || a.Kv.Version != b.Kv.Version {
			t.Fatalf("watch event %d is %s@%d, history has %s@%d", i, a.Kv.Key, a.Kv.ModRevision, b.Kv.Key, b.Kv.ModRevision)
		}
	}
	s.stop()
	t.Logf("%d acknowledged writes over %d kills; revision %d; watch saw %d events once each", acked, rounds, latest, len(watched))
}

// watchAll returns every event under "w" from revision 1 to rev.
func watchAll(t *testing.T, c *clientv3.Client, rev int64) []*clientv3.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var out []*clientv3.Event
	for resp := range c.Watch(ctx, "w", clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			t.Fatalf("watch from the start: %v", err)
		}
		out = append(out, resp.Events...)
		if len(out) > 0 && out[len(out)-1].Kv.ModRevision >= rev {
			return out
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("watch from the start: %v", err)
	}
	t.Fatal("watch from the start ended early")
	return nil
}

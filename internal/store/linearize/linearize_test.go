package linearize

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keelson-dev/keelson/internal/store/conformance/dbtest"
)

var (
	flagDuration = flag.Duration("linearize.duration", 3*time.Second, "how long clients run operations in each test (1s in -short unless set)")
	flagViz      = flag.Bool("linearize.viz", false, "write porcupine's visualization for passing runs too")
	flagStrict   = flag.Bool("linearize.strict-watch", true, "fail connection-loss runs whose watches the server ends with an error (false: only log them)")
)

const (
	// keys is the size of the key set clients work on: small, so that
	// operations on one key overlap.
	keys = 6
	// clientsPerInstance is how many clients are bound to each instance.
	clientsPerInstance = 4
	// opTimeout bounds one client operation; a write that times out has
	// an unknown outcome.
	opTimeout = 10 * time.Second
	// checkTimeout bounds porcupine's search.
	checkTimeout = 60 * time.Second
)

// faultKind is what goes wrong during a run.
type faultKind int

const (
	noFaults faultKind = iota
	// restarts closes an instance and starts a replacement on the same
	// database (embedded: the same data directory).
	restarts
	// connectionLoss makes the database drop every connection of every
	// instance.
	connectionLoss
)

// TestLinearizable runs the workload on three instances sharing one
// PostgreSQL schema, three sharing one MariaDB/MySQL database, and one
// embedded store, and checks the history and the watch streams.
func TestLinearizable(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine.Name, func(t *testing.T) { run(t, engine, noFaults) })
	}
}

// TestLinearizableWithRestarts is TestLinearizable with instances closed
// and replaced during the run.
func TestLinearizableWithRestarts(t *testing.T) {
	for _, engine := range dbtest.Engines {
		t.Run(engine.Name, func(t *testing.T) { run(t, engine, restarts) })
	}
}

// TestLinearizableWithConnectionLoss is TestLinearizable with the
// database dropping every instance's connections during the run: commits
// whose outcome the store itself cannot know.
func TestLinearizableWithConnectionLoss(t *testing.T) {
	for _, engine := range dbtest.Engines {
		if engine.Name == "embedded" {
			continue
		}
		t.Run(engine.Name, func(t *testing.T) { run(t, engine, connectionLoss) })
	}
}

// duration is how long clients run operations.
func duration() time.Duration {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "linearize.duration" })
	if testing.Short() && !set {
		return time.Second
	}
	return *flagDuration
}

func instancesFor(engine dbtest.Engine) int {
	if engine.Name == "embedded" {
		return 1
	}
	return 3
}

type fault struct {
	what       string
	start, end int64
}

func run(t *testing.T, engine dbtest.Engine, faults faultKind) {
	c := newCluster(t, engine, instancesFor(engine))
	ctx := t.Context()
	prefix := fmt.Sprintf("/linearize/%x/", rand.Uint64())
	from, err := c.revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from++ // the first revision the workload can create

	hist := NewHistory()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watchers []*watcher
	var wwg sync.WaitGroup
	for _, sl := range c.slots {
		w := &watcher{slot: sl, prefix: prefix, next: from, notify: make(chan struct{}, 1), rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(sl.idx)))}
		watchers = append(watchers, w)
		wwg.Go(func() { w.run(watchCtx) })
	}

	runCtx, stopRun := context.WithTimeout(ctx, duration())
	defer stopRun()
	var cwg sync.WaitGroup
	var errMu sync.Mutex
	clientErrs := map[string]int{}
	for i := range len(c.slots) * clientsPerInstance {
		cl := &client{id: i, slot: c.slots[i%len(c.slots)], prefix: prefix, hist: hist,
			rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(i))), modRev: map[string]int64{}}
		cwg.Go(func() {
			defer cl.close()
			for runCtx.Err() == nil {
				if err := cl.step(runCtx); err != nil {
					errMu.Lock()
					clientErrs[err.Error()]++
					errMu.Unlock()
				}
			}
		})
	}
	var faultLog []fault
	if faults != noFaults {
		// Inject at one third and at two thirds of the run.
		for k := 1; k <= 2; k++ {
			select {
			case <-time.After(duration() * time.Duration(k) / 3): // when to inject, not synchronisation
			case <-runCtx.Done():
			}
			f := fault{start: hist.Now()}
			switch faults {
			case restarts:
				i := k % len(c.slots)
				f.what = fmt.Sprintf("restart instance %d", i)
				if err := c.restart(i); err != nil {
					t.Fatal(err)
				}
			case connectionLoss:
				f.what = "drop all database connections"
				dbtest.KillConnections(t, c.backend)
			}
			f.end = hist.Now()
			faultLog = append(faultLog, f)
			c.log.Info("fault injected", "fault", f.what, "took", time.Duration(f.end-f.start))
		}
	}
	cwg.Wait()

	// Every watcher reaches the final revision.
	to, err := c.revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	for _, w := range watchers {
		if err := w.waitFor(waitCtx, to); err != nil {
			t.Errorf("watcher on instance %d: %v", w.slot.idx, err)
		}
	}
	cancelWait()
	stopWatch()
	wwg.Wait()

	for _, w := range watchers {
		for _, msg := range w.interrupted {
			// Known issue: a database error while a stream reads (watch
			// creation, catch-up) ends the whole stream with codes.Unknown,
			// which clientv3 does not retry (etcd never does this).
			if faults == connectionLoss && !*flagStrict {
				t.Logf("watcher on instance %d: server ended the watch (known issue, resumed): %s", w.slot.idx, msg)
			} else {
				t.Errorf("watcher on instance %d: server ended the watch: %s", w.slot.idx, msg)
			}
		}
	}

	ops := hist.Ops()
	summarize(t, ops, watchers, faultLog, clientErrs, from, to)
	if faults == noFaults {
		for msg, n := range clientErrs {
			t.Errorf("%d× client error without faults: %s", n, msg)
		}
	}

	// Linearizability.
	began := time.Now()
	res, info := CheckLinearizable(ops, checkTimeout)
	t.Logf("porcupine: %s on %d operations in %v", res, len(ops), time.Since(began).Round(time.Millisecond))
	if res != porcupine.Ok || *flagViz {
		annotate(&info, faultLog)
		if path, err := visualize(info); err != nil {
			t.Errorf("writing visualization: %v", err)
		} else {
			t.Logf("visualization: %s", path)
		}
	}
	switch res {
	case porcupine.Illegal:
		t.Errorf("history is not linearizable (see the visualization above):\n%s", Explain(ops, checkTimeout))
	case porcupine.Unknown:
		t.Errorf("porcupine gave up after %v", checkTimeout)
	}
	for _, err := range CheckRevisions(ops) {
		t.Errorf("revisions: %v", err)
	}

	// Watch guarantees: read the whole range back through every instance.
	readBack := make([][]Event, len(c.slots))
	for _, sl := range c.slots {
		evs, err := readEvents(ctx, sl, prefix, from, to)
		if err != nil {
			t.Fatalf("reading back events through instance %d: %v", sl.idx, err)
		}
		readBack[sl.idx] = evs
	}
	for _, err := range CheckStream(readBack[0], from, to) {
		t.Errorf("read-back watch on instance 0: %v", err)
	}
	for _, err := range CheckAgainstHistory(readBack[0], ops) {
		t.Errorf("history vs. events: %v", err)
	}
	for i, evs := range readBack[1:] {
		if d := firstDiff(readBack[0], evs); d != "" {
			t.Errorf("read-back watch on instance %d differs from instance 0: %s", i+1, d)
		}
	}
	for _, w := range watchers {
		for _, err := range CheckStream(w.events, from, to) {
			t.Errorf("live watcher on instance %d: %v", w.slot.idx, err)
		}
		if d := firstDiff(readBack[0], w.events); d != "" {
			t.Errorf("live watcher on instance %d differs from the read-back: %s", w.slot.idx, d)
		}
	}
}

func summarize(t *testing.T, ops []Op, watchers []*watcher, faults []fault, clientErrs map[string]int, from, to int64) {
	t.Helper()
	type key struct {
		kind    Kind
		outcome string
	}
	counts := map[key]int{}
	for _, op := range ops {
		o := "ok"
		switch {
		case op.Out.Unknown:
			o = "unknown"
		case op.In.Kind == CAS && !op.Out.Succeeded:
			o = "failed"
		case op.In.Kind == Delete && op.Out.Deleted == 0:
			o = "none"
		}
		counts[key{op.In.Kind, o}]++
	}
	var parts []string
	for _, k := range []Kind{Get, Put, CAS, Delete} {
		for _, o := range []string{"ok", "failed", "none", "unknown"} {
			if n := counts[key{k, o}]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %s %d", k, o, n))
			}
		}
	}
	resumes := 0
	for _, w := range watchers {
		resumes += w.resumes
	}
	nerr := 0
	for _, n := range clientErrs {
		nerr += n
	}
	t.Logf("%d operations (%v), revisions %d..%d, %d watchers resumed %d times, %d faults, %d client errors",
		len(ops), parts, from, to, len(watchers), resumes, len(faults), nerr)
}

func firstDiff(want, got []Event) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("event %d: %s, want %s", i, got[i], want[i])
		}
	}
	if len(want) != len(got) {
		return fmt.Sprintf("%d events, want %d", len(got), len(want))
	}
	return ""
}

func annotate(info *porcupine.LinearizationInfo, faults []fault) {
	var as []porcupine.Annotation
	for _, f := range faults {
		as = append(as, porcupine.Annotation{
			Tag: "faults", Start: f.start, End: f.end,
			Description: f.what, BackgroundColor: "#f4b6b6",
		})
	}
	info.AddAnnotations(as)
}

// visualize writes porcupine's visualization to a temp file that outlives
// the test.
func visualize(info porcupine.LinearizationInfo) (string, error) {
	f, err := os.CreateTemp("", "keelson-linearize-*.html")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := porcupine.Visualize(Model, info, f); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// client runs operations through the instance of one slot, switching to
// the replacement when the instance is restarted.
type client struct {
	id     int
	slot   *slot
	prefix string
	hist   *History
	rng    *rand.Rand
	seq    int
	// modRev is the mod revision this client last saw per key (0: absent),
	// which its compare-and-sets expect.
	modRev map[string]int64

	inst *instance
	cli  *clientv3.Client
}

func (c *client) close() {
	if c.cli != nil {
		c.cli.Close()
	}
}

// step runs one random operation and records it. A write whose outcome is
// unknown is recorded as such; a failed read is not recorded (it changed
// nothing). The error, if any, is returned for the summary.
func (c *client) step(runCtx context.Context) error {
	inst := c.slot.current(runCtx)
	if inst == nil {
		return nil
	}
	if inst != c.inst {
		c.close()
		cli, err := newClient(inst.addr)
		if err != nil {
			return err
		}
		c.inst, c.cli = inst, cli
	}
	k := fmt.Sprintf("k%d", c.rng.IntN(keys))
	key := c.prefix + k
	c.seq++
	value := fmt.Sprintf("c%d.%d", c.id, c.seq)
	in := Input{Key: k}
	switch p := c.rng.IntN(100); {
	case p < 30:
		in.Kind = Get
	case p < 55:
		in.Kind, in.Value = Put, value
	case p < 85:
		in.Kind, in.Value, in.Expect = CAS, value, c.modRev[k]
	default:
		in.Kind = Delete
	}
	ctx, cancel := context.WithTimeout(inst.ctx, opTimeout)
	defer cancel()
	op := Op{Client: c.id, In: in, Call: c.hist.Now()}
	var err error
	switch in.Kind {
	case Get:
		var resp *clientv3.GetResponse
		if resp, err = c.cli.Get(ctx, key); err == nil {
			op.Out = Output{Rev: resp.Header.Revision}
			if len(resp.Kvs) > 0 {
				kv := resp.Kvs[0]
				op.Out.Found, op.Out.Value, op.Out.ModRev, op.Out.CreateRev, op.Out.Version = true, string(kv.Value), kv.ModRevision, kv.CreateRevision, kv.Version
			}
			c.modRev[k] = op.Out.ModRev
		}
	case Put:
		var resp *clientv3.PutResponse
		if resp, err = c.cli.Put(ctx, key, value); err == nil {
			op.Out = Output{Rev: resp.Header.Revision}
			c.modRev[k] = op.Out.Rev
		}
	case CAS:
		var resp *clientv3.TxnResponse
		resp, err = c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", in.Expect)).
			Then(clientv3.OpPut(key, value)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err == nil {
			op.Out = Output{Rev: resp.Header.Revision, Succeeded: resp.Succeeded}
			if resp.Succeeded {
				c.modRev[k] = op.Out.Rev
			} else if len(resp.Responses) == 1 {
				if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
					kv := kvs[0]
					op.Out.Found, op.Out.Value, op.Out.ModRev, op.Out.CreateRev, op.Out.Version = true, string(kv.Value), kv.ModRevision, kv.CreateRevision, kv.Version
				}
				c.modRev[k] = op.Out.ModRev
			} else {
				err = fmt.Errorf("failed txn returned %d responses, want 1", len(resp.Responses))
			}
		}
	case Delete:
		var resp *clientv3.DeleteResponse
		if resp, err = c.cli.Delete(ctx, key); err == nil {
			op.Out = Output{Rev: resp.Header.Revision, Deleted: resp.Deleted}
			c.modRev[k] = 0
		}
	}
	op.Return = c.hist.Now()
	if err != nil {
		if in.Kind == Get {
			return fmt.Errorf("%s: %w", in.Kind, err)
		}
		op.Out = Output{Unknown: true}
	}
	c.hist.Add(op)
	if err != nil {
		return fmt.Errorf("%s: %w", in.Kind, err)
	}
	return nil
}

// watcher watches the test's prefix through one slot from a start
// revision, recording events; now and then it cancels and resumes after
// the last revision it received, and after a restart it resumes on the
// replacement instance.
type watcher struct {
	slot    *slot
	prefix  string
	rng     *rand.Rand
	notify  chan struct{}
	resumes int

	mu     sync.Mutex
	next   int64 // the revision to resume at
	events []Event
	err    error
	// interrupted lists the errors the server ended watches with.
	interrupted []string
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		inst := w.slot.current(ctx)
		if inst == nil {
			return
		}
		if err := w.watchOnce(ctx, inst); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			w.wake()
			return
		}
	}
}

// watchOnce watches through inst until the instance goes away, ctx ends or
// the watcher decides to resume.
func (w *watcher) watchOnce(ctx context.Context, inst *instance) error {
	cli, err := newClient(inst.addr)
	if err != nil {
		return err
	}
	defer cli.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(inst.ctx, cancel)
	defer stop()
	w.mu.Lock()
	from := w.next
	w.mu.Unlock()
	resumeAfter := 50 + w.rng.IntN(150)
	got := 0
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), w.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			if wctx.Err() != nil || inst.ctx.Err() != nil {
				return nil
			}
			// The server ended the watch with an error clientv3 does not
			// retry: record it and resume after the last revision received,
			// as an application would.
			w.mu.Lock()
			w.interrupted = append(w.interrupted, fmt.Sprintf("watch from %d ended after %d events: %v", from, got, err))
			w.mu.Unlock()
			return nil
		}
		w.mu.Lock()
		for _, ev := range resp.Events {
			w.events = append(w.events, eventOf(ev, w.prefix))
			w.next = ev.Kv.ModRevision + 1
		}
		w.mu.Unlock()
		w.wake()
		got += len(resp.Events)
		if got >= resumeAfter {
			w.resumes++
			return nil
		}
	}
	return nil
}

func (w *watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// waitFor waits until the watcher has received revision rev.
func (w *watcher) waitFor(ctx context.Context, rev int64) error {
	for {
		w.mu.Lock()
		next, err := w.next, w.err
		w.mu.Unlock()
		if err != nil {
			return err
		}
		if next > rev {
			return nil
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return fmt.Errorf("revision %d never arrived (next expected %d)", rev, next)
		}
	}
}

func eventOf(ev *clientv3.Event, prefix string) Event {
	kv := ev.Kv
	e := Event{Rev: kv.ModRevision, Key: string(kv.Key[min(len(prefix), len(kv.Key)):])}
	if ev.Type == clientv3.EventTypeDelete {
		e.Delete = true
		return e
	}
	e.Value, e.ModRev, e.CreateRev, e.Version = string(kv.Value), kv.ModRevision, kv.CreateRevision, kv.Version
	return e
}

// readEvents reads every event in [from, to] back with a fresh watch.
func readEvents(ctx context.Context, sl *slot, prefix string, from, to int64) ([]Event, error) {
	if to < from {
		return nil, nil
	}
	inst := sl.current(ctx)
	if inst == nil {
		return nil, ctx.Err()
	}
	cli, err := newClient(inst.addr)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var evs []Event
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if err := resp.Err(); err != nil {
			return evs, err
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > to {
				return evs, nil
			}
			evs = append(evs, eventOf(ev, prefix))
		}
		if len(evs) > 0 && evs[len(evs)-1].Rev >= to {
			return evs, nil
		}
	}
	return evs, fmt.Errorf("watch ended after %d events: %w", len(evs), wctx.Err())
}

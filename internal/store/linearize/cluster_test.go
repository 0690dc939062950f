package linearize

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keelson-dev/keelson/internal/store"
	"github.com/keelson-dev/keelson/internal/store/conformance/dbtest"
)

// instance is one running store server. ctx ends when the server is being
// replaced (or the test ends), which cancels everything bound to it.
type instance struct {
	srv    *store.Server
	addr   string
	ctx    context.Context
	cancel context.CancelFunc
}

// slot is a place in the cluster that clients and a watcher are bound to;
// restarting it replaces its instance by a new one on the same database.
type slot struct {
	idx int
	mu  sync.Mutex
	cur *instance     // nil while being replaced
	up  chan struct{} // closed when cur is set
}

// current waits until the slot has a running instance.
func (s *slot) current(ctx context.Context) *instance {
	for {
		s.mu.Lock()
		cur, up := s.cur, s.up
		s.mu.Unlock()
		if cur != nil {
			return cur
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil
		}
	}
}

// cluster is n store servers on one database (the embedded engine: one
// server on one data directory).
type cluster struct {
	t       *testing.T
	backend string // store Backend setting, "" for the embedded engine
	dataDir string
	slots   []*slot
	log     *slog.Logger
}

func newCluster(t *testing.T, engine dbtest.Engine, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, backend: engine.NewBackend(t), log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if c.backend == "" {
		c.dataDir = t.TempDir()
	}
	for i := range n {
		sl := &slot{idx: i, up: make(chan struct{})}
		inst, err := c.start(i)
		if err != nil {
			t.Fatal(err)
		}
		sl.cur = inst
		close(sl.up)
		c.slots = append(c.slots, sl)
	}
	t.Cleanup(func() {
		for _, sl := range c.slots {
			sl.mu.Lock()
			inst := sl.cur
			sl.mu.Unlock()
			if inst != nil {
				inst.cancel()
				if err := inst.srv.Close(); err != nil {
					t.Errorf("closing instance %d: %v", sl.idx, err)
				}
			}
		}
	})
	return c
}

func (c *cluster) start(i int) (*instance, error) {
	srv, err := dbtest.NewStore(c.t, c.backend, func(cfg *store.Config) {
		cfg.Name = fmt.Sprintf("linearize-%d", i)
		if c.dataDir != "" {
			cfg.DataDir = c.dataDir
		}
	})
	if err != nil {
		return nil, fmt.Errorf("instance %d: %w", i, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{srv: srv, addr: srv.Addr(), ctx: ctx, cancel: cancel}, nil
}

// restart closes slot i's instance and starts a replacement on the same
// database. Clients bound to the slot wait meanwhile.
func (c *cluster) restart(i int) error {
	sl := c.slots[i]
	sl.mu.Lock()
	old := sl.cur
	sl.cur, sl.up = nil, make(chan struct{})
	sl.mu.Unlock()
	old.cancel()
	if err := old.srv.Close(); err != nil {
		return fmt.Errorf("closing instance %d: %w", i, err)
	}
	inst, err := c.start(i)
	if err != nil {
		return err
	}
	sl.mu.Lock()
	sl.cur = inst
	close(sl.up)
	sl.mu.Unlock()
	return nil
}

// client connects to one instance.
func newClient(addr string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// revision is the store's current revision as a linearizable read through
// every instance sees it (the largest).
func (c *cluster) revision(ctx context.Context) (int64, error) {
	var rev int64
	for _, sl := range c.slots {
		inst := sl.current(ctx)
		if inst == nil {
			return 0, ctx.Err()
		}
		cli, err := newClient(inst.addr)
		if err != nil {
			return 0, err
		}
		resp, err := cli.Get(ctx, "linearize-revision-probe")
		cli.Close()
		if err != nil {
			return 0, fmt.Errorf("reading revision through instance %d: %w", sl.idx, err)
		}
		rev = max(rev, resp.Header.Revision)
	}
	return rev, nil
}

// The MySQL driver logs every connection the connection-loss tests break.
func init() { _ = gomysql.SetLogger(discardLogger{}) }

type discardLogger struct{}

func (discardLogger) Print(...any) {}

// Command capacity is keelson store's capacity run (not in CI): it loads a
// server with distinct keys holding 10 KiB values and, each time the stored
// value bytes reach a checkpoint (1, 4, 8, 16 GiB by default), measures the
// same things in the same shape:
//
//   - put latency: a fixed burst of overwrites of random existing keys at 100
//     clients, one gRPC connection per client;
//   - get latency: linearizable single-key ranges of random existing keys;
//   - page latency: a 500-key page (range from a random existing key to the
//     end of the prefix, limit 500), as kube-apiserver's paginated lists do;
//   - RSS of the server (VmRSS, RssAnon, RssFile from /proc/PID/status);
//   - disk used by the data directory;
//   - restart: SIGTERM, time until the process exits, start again, time
//     until a linearizable Get answers, then a count that every key is back.
//
// Targets run one after the other, never two servers at once, each in a new
// data directory deleted afterwards. etcd runs with --quota-backend-bytes
// (8 GiB by default, etcd's suggested maximum); when it refuses a write
// (mvcc: database space exceeded) the run records how much it held and
// moves on. Loading stops with an error if the file system holding the data
// directory would drop below --min-free-gib.
//
// Usage:
//
//	go run ./bench/capacity --bin bin --checkpoints 1,4,8,16 --targets keelson,etcd --out /tmp/cap.md --json /tmp/cap.json
//	go run ./bench/capacity --help
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type config struct {
	bin          string
	targets      []string
	checkpoints  []float64
	valueSize    int
	loadClients  int
	loadConns    int
	burst        int
	burstClients int
	gets         int
	getClients   int
	pages        int
	pageClients  int
	pageSize     int
	quota        int64
	workDir      string
	minFreeGiB   float64
	readyTimeout time.Duration
	out          string
	jsonOut      string
}

const prefix = "/registry/capacity/"

func key(i int) string { return fmt.Sprintf("%s%09d", prefix, i) }

// Stats is a latency summary in milliseconds.
type Stats struct {
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
	PerSec float64 `json:"per_sec"`
}

// Point is what one checkpoint measured.
type Point struct {
	Target       string  `json:"target"`
	GiB          float64 `json:"data_gib"` // value bytes stored, GiB
	Keys         int     `json:"keys"`
	LoadMBps     float64 `json:"load_mb_per_s"` // since the previous checkpoint
	Put          Stats   `json:"put"`
	Get          Stats   `json:"get"`
	Page         Stats   `json:"page"`
	RSSKiB       int64   `json:"rss_kib"`
	AnonKiB      int64   `json:"rss_anon_kib"`
	FileKiB      int64   `json:"rss_file_kib"`
	DiskBytes    int64   `json:"disk_bytes"`
	StopSecs     float64 `json:"stop_secs"`
	ReadySecs    float64 `json:"ready_secs"` // start until a linearizable Get answers
	RSSAfterKiB  int64   `json:"rss_after_restart_kib"`
	Refused      bool    `json:"refused,omitempty"` // load stopped by the server before this checkpoint
	RefusedError string  `json:"refused_error,omitempty"`
}

func main() {
	var cfg config
	var targets, checkpoints string
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding keelson and etcd")
	flag.StringVar(&targets, "targets", "keelson,etcd", "comma-separated targets, run one after the other: keelson, etcd")
	flag.StringVar(&checkpoints, "checkpoints", "1,4,8,16", "GiB of stored value bytes at which to measure, ascending")
	flag.IntVar(&cfg.valueSize, "value-size", 10<<10, "bytes per value")
	flag.IntVar(&cfg.loadClients, "load-clients", 64, "concurrent writers while loading")
	flag.IntVar(&cfg.loadConns, "load-conns", 16, "gRPC connections shared by the loading writers")
	flag.IntVar(&cfg.burst, "burst", 3000, "puts in each put burst (overwrites of random existing keys)")
	flag.IntVar(&cfg.burstClients, "burst-clients", 100, "clients (one connection each) in each put burst")
	flag.IntVar(&cfg.gets, "gets", 5000, "single-key linearizable gets of random existing keys per checkpoint")
	flag.IntVar(&cfg.getClients, "get-clients", 10, "concurrent clients for the gets")
	flag.IntVar(&cfg.pages, "pages", 200, "pages per checkpoint")
	flag.IntVar(&cfg.pageClients, "page-clients", 2, "concurrent clients for the pages")
	flag.IntVar(&cfg.pageSize, "page-size", 500, "keys per page")
	flag.Int64Var(&cfg.quota, "etcd-quota-bytes", 8<<30, "etcd --quota-backend-bytes (8 GiB is etcd's suggested maximum)")
	flag.StringVar(&cfg.workDir, "work-dir", os.TempDir(), "where data directories and server logs are created (and deleted)")
	flag.Float64Var(&cfg.minFreeGiB, "min-free-gib", 15, "stop loading if the work dir's file system has less free space than this")
	flag.DurationVar(&cfg.readyTimeout, "ready-timeout", 10*time.Minute, "longest wait for a (re)started server to answer")
	flag.StringVar(&cfg.out, "out", "", "write the results as a markdown table to this file (also printed)")
	flag.StringVar(&cfg.jsonOut, "json", "", "write the raw figures as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./bench/capacity [flags]\n\n"+
			"Loads keelson store (embedded engine) and etcd, one after the other, with distinct keys of\n"+
			"--value-size values and at each checkpoint (GiB of stored values) measures put/get/page\n"+
			"latency, server RSS, disk use and restart time. etcd runs with --etcd-quota-bytes; the\n"+
			"run records where it refuses writes (database space exceeded). Not for CI: 16 GiB takes\n"+
			"minutes of writes and as much free disk.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	cfg.targets = strings.Split(targets, ",")
	for _, s := range strings.Split(checkpoints, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f <= 0 {
			fail("bad --checkpoints", "value", s)
		}
		cfg.checkpoints = append(cfg.checkpoints, f)
	}
	if !slices.IsSorted(cfg.checkpoints) {
		fail("--checkpoints must be ascending")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	var all []Point
	for _, t := range cfg.targets {
		pts, err := runTarget(ctx, cfg, t)
		all = append(all, pts...)
		if err != nil {
			slog.Error("target failed", "target", t, "err", err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	md := markdown(cfg, all, time.Since(start))
	fmt.Print(md)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			fail("writing --out", "err", err)
		}
	}
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			fail("writing --json", "err", err)
		}
	}
}

func fail(msg string, args ...any) {
	slog.Error(msg, args...)
	os.Exit(1)
}

// server is one running keelson or etcd process.
type server struct {
	target, dataDir, logPath string
	bin                      string
	args                     []string
	endpoint                 string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	waitErr                  error
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func newServer(cfg config, target, dir string) (*server, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{target: target, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "server.log"), endpoint: listen}
	switch target {
	case "keelson":
		s.bin = filepath.Join(cfg.bin, "keelson")
		s.args = []string{"store", "--listen", listen, "--data-dir", s.dataDir, "--metrics-listen", metrics, "--log-level", "warn"}
	case "etcd":
		peer, err := freeAddr()
		if err != nil {
			return nil, err
		}
		s.bin = filepath.Join(cfg.bin, "etcd")
		s.args = []string{"--name", "capacity", "--data-dir", s.dataDir,
			"--listen-client-urls", "http://" + listen, "--advertise-client-urls", "http://" + listen,
			"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "capacity=http://" + peer, "--initial-cluster-state", "new",
			"--listen-metrics-urls", "http://" + metrics,
			"--quota-backend-bytes", strconv.FormatInt(cfg.quota, 10), "--log-level", "warn"}
	default:
		return nil, fmt.Errorf("unknown target %q (keelson, etcd)", target)
	}
	return s, nil
}

// start launches the process and returns how long it took to answer a
// linearizable Get.
func (s *server) start(ctx context.Context, within time.Duration) (time.Duration, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.exited = make(chan struct{})
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", s.bin, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, within); err != nil {
		s.stop()
		return 0, fmt.Errorf("%w; log tail: %s", err, tail(s.logPath, 800))
	}
	return time.Since(t0), nil
}

func (s *server) waitReady(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// First wait for the port to accept connections: a gRPC client that
	// dials too early backs off for a second or more, which would blur
	// the restart time.
	var last error
	for {
		c, err := net.DialTimeout("tcp", s.endpoint, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited: %v", s.target, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen: %w (last error: %v)", s.target, ctx.Err(), last)
		case <-tick.C:
		}
	}
	cli, err := newClient(s.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "/capacity/readiness")
		rcancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited: %v", s.target, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", s.target, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and returns how long the process took to exit
// (SIGKILL after two minutes).
func (s *server) stop() time.Duration {
	select {
	case <-s.exited:
		return 0
	default:
	}
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(2 * time.Minute):
		slog.Warn("server ignored SIGTERM, killing", "target", s.target)
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return time.Since(t0)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func newClient(ep string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20, MaxCallRecvMsgSize: 256 << 20,
	})
}

func clients(ep string, n int) ([]*clientv3.Client, func(), error) {
	cs := make([]*clientv3.Client, 0, n)
	closeAll := func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}
	for range n {
		c, err := newClient(ep)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cs = append(cs, c)
	}
	return cs, closeAll, nil
}

func runTarget(ctx context.Context, cfg config, target string) ([]Point, error) {
	dir, err := os.MkdirTemp(cfg.workDir, "capacity-"+target+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			slog.Warn("removing work dir", "dir", dir, "err", err)
		}
	}()
	srv, err := newServer(cfg, target, dir)
	if err != nil {
		return nil, err
	}
	if _, err := srv.start(ctx, cfg.readyTimeout); err != nil {
		return nil, err
	}
	defer srv.stop()
	slog.Info("started", "target", target, "endpoint", srv.endpoint, "dir", dir)

	// One random buffer; each value is a window of it with the key's
	// index in its first 8 bytes, so values differ and do not compress.
	buf := make([]byte, cfg.valueSize+4096)
	_, _ = rand.Read(buf)
	value := func(i int) string {
		v := make([]byte, cfg.valueSize)
		copy(v, buf[i%4096:])
		binary.LittleEndian.PutUint64(v, uint64(i))
		return string(v)
	}

	var pts []Point
	loaded := 0
	for _, gib := range cfg.checkpoints {
		want := int(gib * (1 << 30) / float64(cfg.valueSize))
		t0 := time.Now()
		n, lerr := load(ctx, cfg, srv, loaded, want, value)
		rate := float64(n-loaded) * float64(cfg.valueSize) / time.Since(t0).Seconds() / 1e6
		loaded = n
		if lerr != nil {
			p := Point{Target: target, GiB: float64(loaded) * float64(cfg.valueSize) / (1 << 30), Keys: loaded, LoadMBps: rate,
				Refused: true, RefusedError: lerr.Error()}
			p.DiskBytes = diskUsage(srv.dataDir)
			if st, err := procStatus(srv.cmd.Process.Pid); err == nil {
				p.RSSKiB, p.AnonKiB, p.FileKiB = st["VmRSS"], st["RssAnon"], st["RssFile"]+st["RssShmem"]
			}
			pts = append(pts, p)
			slog.Warn("load stopped", "target", target, "keys", loaded, "gib", p.GiB, "err", lerr)
			if ctx.Err() != nil || !strings.Contains(lerr.Error(), "space exceeded") {
				return pts, lerr
			}
			return pts, nil
		}
		slog.Info("checkpoint reached", "target", target, "gib", gib, "keys", loaded, "load_mb_per_s", fmt.Sprintf("%.1f", rate))
		p, err := measure(ctx, cfg, srv, loaded, value)
		p.Target, p.GiB, p.Keys, p.LoadMBps = target, gib, loaded, rate
		pts = append(pts, p)
		if err != nil {
			return pts, err
		}
		slog.Info("measured", "point", fmt.Sprintf("%+v", p))
	}
	return pts, nil
}

// load writes keys [from, to) with cfg.loadClients writers and returns
// how many keys from 0 are known written (all below the first failure).
func load(ctx context.Context, cfg config, srv *server, from, to int, value func(int) string) (int, error) {
	if from >= to {
		return from, nil
	}
	cs, closeAll, err := clients(srv.endpoint, cfg.loadConns)
	if err != nil {
		return from, err
	}
	defer closeAll()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Disk guard: stop loading before the file system gets too full.
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if free := freeGiB(srv.dataDir); free < cfg.minFreeGiB {
					cancel(fmt.Errorf("only %.1f GiB free on the data dir's file system (--min-free-gib %.0f)", free, cfg.minFreeGiB))
					return
				}
			}
		}
	}()
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for w := range cfg.loadClients {
		wg.Go(func() {
			cli := cs[w%len(cs)]
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if _, err := cli.Put(ctx, key(i), value(i)); err != nil {
					cancel(fmt.Errorf("put %s: %w", key(i), err))
					return
				}
			}
		})
	}
	wg.Wait()
	cerr := context.Cause(ctx)
	if cerr == nil {
		return to, nil
	}
	// Stopped early: the keys written are not a contiguous prefix any
	// more, so ask the server how many it holds.
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer ccancel()
	r, err := cs[0].Get(cctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return from, fmt.Errorf("%w (and counting keys: %v)", cerr, err)
	}
	return int(r.Count), cerr
}

// measure runs the latency phases, reads memory and disk, and restarts.
func measure(ctx context.Context, cfg config, srv *server, n int, value func(int) string) (Point, error) {
	var p Point
	if st, err := procStatus(srv.cmd.Process.Pid); err == nil {
		p.RSSKiB, p.AnonKiB, p.FileKiB = st["VmRSS"], st["RssAnon"], st["RssFile"]+st["RssShmem"]
	}
	p.DiskBytes = diskUsage(srv.dataDir)

	// Put burst: overwrites of random existing keys, one connection per client.
	cs, closeAll, err := clients(srv.endpoint, cfg.burstClients)
	if err != nil {
		return p, err
	}
	p.Put = timed(ctx, cfg.burst, cfg.burstClients, func(w int) error {
		i := mrand.IntN(n)
		_, err := cs[w].Put(ctx, key(i), value(i))
		return err
	})
	closeAll()

	cs, closeAll, err = clients(srv.endpoint, max(cfg.getClients, cfg.pageClients))
	if err != nil {
		return p, err
	}
	defer closeAll()
	p.Get = timed(ctx, cfg.gets, cfg.getClients, func(w int) error {
		k := key(mrand.IntN(n))
		r, err := cs[w].Get(ctx, k)
		if err == nil && (len(r.Kvs) != 1 || len(r.Kvs[0].Value) != cfg.valueSize) {
			err = fmt.Errorf("get %s: %d kvs", k, len(r.Kvs))
		}
		return err
	})
	end := clientv3.GetPrefixRangeEnd(prefix)
	p.Page = timed(ctx, cfg.pages, cfg.pageClients, func(w int) error {
		k := key(mrand.IntN(max(1, n-cfg.pageSize)))
		r, err := cs[w].Get(ctx, k, clientv3.WithRange(end), clientv3.WithLimit(int64(cfg.pageSize)))
		if err == nil && len(r.Kvs) != min(cfg.pageSize, n) {
			err = fmt.Errorf("page from %s: %d kvs", k, len(r.Kvs))
		}
		return err
	})
	if p.Put.Errors+p.Get.Errors+p.Page.Errors > 0 {
		slog.Warn("errors during latency phases", "put", p.Put.Errors, "get", p.Get.Errors, "page", p.Page.Errors)
	}

	// Restart.
	p.StopSecs = srv.stop().Seconds()
	ready, err := srv.start(ctx, cfg.readyTimeout)
	if err != nil {
		return p, fmt.Errorf("restart: %w", err)
	}
	p.ReadySecs = ready.Seconds()
	if st, err := procStatus(srv.cmd.Process.Pid); err == nil {
		p.RSSAfterKiB = st["VmRSS"]
	}
	cli, err := newClient(srv.endpoint)
	if err != nil {
		return p, err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := cli.Get(cctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return p, fmt.Errorf("count after restart: %w", err)
	}
	if r.Count != int64(n) {
		return p, fmt.Errorf("after restart %s counts %d keys, loaded %d", srv.target, r.Count, n)
	}
	return p, nil
}

// timed runs total calls of op over clients goroutines (op gets the
// goroutine's index) and summarizes their latency.
func timed(ctx context.Context, total, clients int, op func(w int) error) Stats {
	lat := make([][]time.Duration, clients)
	var errs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range clients {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(total) {
				s := time.Now()
				if err := op(w); err != nil {
					if errs.Add(1) == 1 {
						slog.Warn("operation failed", "err", err)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(s))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	all := slices.Concat(lat...)
	slices.Sort(all)
	st := Stats{N: len(all), Errors: int(errs.Load())}
	if len(all) == 0 {
		return st
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p/100*float64(len(all))))] }
	st.P50, st.P99, st.Max = ms(pct(50)), ms(pct(99)), ms(all[len(all)-1])
	st.PerSec = float64(len(all)) / elapsed.Seconds()
	return st
}

func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// diskUsage sums the allocated blocks of every file under dir, as du does.
func diskUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

func freeGiB(dir string) float64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 1 << 20 // unknown: do not stop the load on a failed statfs
	}
	return float64(st.Bavail) * float64(st.Bsize) / (1 << 30)
}

func markdown(cfg config, pts []Point, took time.Duration) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Run on %s (host %s), took %s: %s values, load at %d writers over %d connections; "+
		"put burst %d overwrites at %d clients (one connection each); %d linearizable gets at %d clients; "+
		"%d pages of %d keys at %d clients; etcd --quota-backend-bytes %d.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, took.Round(time.Second), sizeStr(int64(cfg.valueSize)),
		cfg.loadClients, cfg.loadConns, cfg.burst, cfg.burstClients, cfg.gets, cfg.getClients, cfg.pages, cfg.pageSize, cfg.pageClients, cfg.quota)
	b.WriteString("| target | data | keys | load MB/s | put p50 / p99 ms (puts/s) | get p50 / p99 ms | 500-key page p50 / p99 ms | RSS (anon / file) | disk | stop s | restart until ready s | RSS after restart |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		if p.Refused {
			fmt.Fprintf(&b, "| %s | %.2f GiB | %d | %.1f | **refused**: `%s` | | | %s (%s / %s) | %s | | | |\n",
				p.Target, p.GiB, p.Keys, p.LoadMBps, shortErr(p.RefusedError), kib(p.RSSKiB), kib(p.AnonKiB), kib(p.FileKiB), sizeStr(p.DiskBytes))
			continue
		}
		fmt.Fprintf(&b, "| %s | %g GiB | %d | %.1f | %.1f / %.1f (%.0f) | %.2f / %.2f | %.1f / %.1f | %s (%s / %s) | %s | %.2f | %.2f | %s |\n",
			p.Target, p.GiB, p.Keys, p.LoadMBps, p.Put.P50, p.Put.P99, p.Put.PerSec, p.Get.P50, p.Get.P99, p.Page.P50, p.Page.P99,
			kib(p.RSSKiB), kib(p.AnonKiB), kib(p.FileKiB), sizeStr(p.DiskBytes), p.StopSecs, p.ReadySecs, kib(p.RSSAfterKiB))
	}
	return b.String()
}

func shortErr(s string) string {
	if i := strings.LastIndex(s, "etcdserver: "); i >= 0 {
		return s[i:]
	}
	return s
}

func kib(k int64) string { return sizeStr(k << 10) }

func sizeStr(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

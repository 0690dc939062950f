// Command store runs keelson store, etcd and kine side by side on this
// machine, one after another, with the same durability, and writes the
// figures and their ratios to docs/benchmarks.md.
//
//	go run ./bench/store --bin bin --out docs/benchmarks.md           # full run
//	go run ./bench/store --bin bin --quick --out /tmp/bench.md        # smoke run
//	go run ./bench/store --bin bin --targets keelson,etcd --scenarios put,kube
//
// Each target gets fresh state (a new data directory or a new database),
// free ports and a readiness poll. The scenarios are etcd's benchmark tool
// (put at 1 and 100 clients, range serializable and linearizable,
// watch-latency), a Kubernetes-shaped load (create/update txns compared on
// mod_revision, paginated lists, a watch) and resident memory after loading
// 100,000 values of 10 KiB.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/store:", err)
		os.Exit(2)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench/store:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := Default()
	fs := flag.NewFlagSet("bench/store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.BinDir, "bin", cfg.BinDir, "directory with keelson, etcd, kine and benchmark")
	fs.StringVar(&cfg.Out, "out", cfg.Out, "markdown file to regenerate (text above the generated marker is kept); empty: print to stdout")
	fs.StringVar(&cfg.JSONOut, "json", cfg.JSONOut, "also write the raw results as JSON to this file")
	fs.StringVar(&cfg.WorkDir, "work-dir", cfg.WorkDir, "parent of data directories and logs (default: a new directory under $TMPDIR)")
	fs.BoolVar(&cfg.KeepWork, "keep", cfg.KeepWork, "keep data directories, logs and databases")
	targets := fs.String("targets", strings.Join(cfg.Targets, ","), "comma-separated targets: "+strings.Join(targetNames(), ", "))
	scenarios := fs.String("scenarios", strings.Join(cfg.Scenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	fs.BoolVar(&cfg.Quick, "quick", false, "smoke-run sizes (seconds per target) instead of the full run")
	fs.StringVar(&cfg.PostgresURL, "postgres", cfg.PostgresURL, "PostgreSQL admin URL; a fresh database is created per target")
	fs.StringVar(&cfg.MySQLDSN, "mysql", cfg.MySQLDSN, "MySQL/MariaDB admin DSN (go-sql-driver form); a fresh database is created per target")
	fs.StringVar(&cfg.ProfileDir, "cpu-profile-dir", "", "capture CPU profiles of keelson and etcd under put load at 100 clients, and under the Kubernetes-shaped load's lists (with keelson's /metrics after them), into this directory")
	fs.BoolVar(&cfg.PutDistinct, "put-distinct-keys", false, "SQL targets' put loader: the i-th put of a run writes key i (no two puts of a run share a key, so kine's crash on concurrent puts to one key cannot happen); default: keys drawn from --key-space")
	fs.IntVar(&cfg.ProfileSecs, "profile-seconds", cfg.ProfileSecs, "length of each CPU profile")
	fs.StringVar(&cfg.FromJSON, "from-json", "", "run nothing: re-render --out from the results a previous run wrote with --json")

	// Size overrides: 0 keeps the preset (--quick or full).
	var ov Sizes
	fs.IntVar(&ov.PutTotal1, "put-total-1", 0, "puts with 1 client")
	fs.IntVar(&ov.PutTotal100, "put-total-100", 0, "puts with --put-clients clients")
	fs.IntVar(&ov.PutClients, "put-clients", 0, "clients (and connections) of the concurrent put run (default 100)")
	fs.IntVar(&ov.PutKeySpace, "key-space", 0, "benchmark put --key-space-size")
	fs.IntVar(&ov.RangeTotal, "range-total", 0, "ranges per consistency level")
	fs.IntVar(&ov.RangeClients, "range-clients", 0, "clients of the range runs")
	fs.IntVar(&ov.WatchPuts, "watch-puts", 0, "watch-latency --put-total")
	fs.IntVar(&ov.WatchRate, "watch-rate", 0, "watch-latency --put-rate")
	fs.IntVar(&ov.KubeObjects, "kube-objects", 0, "objects of the Kubernetes-shaped load")
	fs.IntVar(&ov.KubeValueSize, "kube-value-size", 0, "bytes per object")
	fs.IntVar(&ov.KubeClients, "kube-clients", 0, "concurrent writers of the Kubernetes-shaped load")
	fs.IntVar(&ov.KubeLists, "kube-lists", 0, "full paginated lists")
	fs.IntVar(&ov.KubePageSize, "page-size", 0, "list page size (kube-apiserver: 500)")
	fs.IntVar(&ov.MemKeys, "mem-keys", 0, "keys loaded before reading resident memory")
	fs.IntVar(&ov.MemValueSize, "mem-value-size", 0, "bytes per key of the memory load")
	fs.IntVar(&ov.CompactFill, "compact-fill", 0, "compaction scenario: puts written before compacting (the history it drops)")
	fs.IntVar(&ov.CompactKeys, "compact-keys", 0, "compaction scenario: keys those puts go to")
	fs.IntVar(&ov.CompactRate, "compact-rate", 0, "compaction scenario: puts/s offered while write latency is measured with and without a compaction running")
	fs.IntVar(&ov.SQLClients, "sql-clients", 0, "concurrent writers against SQL targets (default 40; see docs/benchmarks.md)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg.Targets = splitList(*targets)
	cfg.Scenarios = splitList(*scenarios)
	if cfg.Quick {
		cfg.Sizes = QuickSizes()
	}
	override(&cfg.Sizes, ov)
	cfg.Command = commandLine(args)
	return cfg, cfg.Validate()
}

func override(s *Sizes, ov Sizes) {
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&s.PutTotal1, ov.PutTotal1)
	set(&s.PutTotal100, ov.PutTotal100)
	set(&s.PutClients, ov.PutClients)
	set(&s.PutKeySpace, ov.PutKeySpace)
	set(&s.RangeTotal, ov.RangeTotal)
	set(&s.RangeClients, ov.RangeClients)
	set(&s.WatchPuts, ov.WatchPuts)
	set(&s.WatchRate, ov.WatchRate)
	set(&s.KubeObjects, ov.KubeObjects)
	set(&s.KubeValueSize, ov.KubeValueSize)
	set(&s.KubeClients, ov.KubeClients)
	set(&s.KubeLists, ov.KubeLists)
	set(&s.KubePageSize, ov.KubePageSize)
	set(&s.MemKeys, ov.MemKeys)
	set(&s.MemValueSize, ov.MemValueSize)
	set(&s.SQLClients, ov.SQLClients)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// commandLine is how the run is reproduced, as `make bench` spells it.
func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '\"$&;|") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.TrimSpace("go run ./bench/store " + strings.Join(q, " "))
}

// Results is one run: the JSON output and the source of the markdown.
type Results struct {
	Started  time.Time       `json:"started"`
	Took     time.Duration   `json:"took"`
	Command  string          `json:"command"`
	Quick    bool            `json:"quick"`
	Sizes    Sizes           `json:"sizes"`
	Machine  Machine         `json:"machine"`
	Targets  []*TargetResult `json:"targets"`
	Foreign  float64         `json:"foreign_cpu_share"` // CPU used by other processes during the whole run
	Warnings []string        `json:"warnings,omitempty"`
}

// TargetResult holds one target's figures; nil means not run.
type TargetResult struct {
	Name       string        `json:"name"`
	Label      string        `json:"label"`
	Version    string        `json:"version"`
	Durability string        `json:"durability"`
	Skipped    string        `json:"skipped,omitempty"`
	Errors     []string      `json:"errors,omitempty"`
	Took       time.Duration `json:"took"`
	Foreign    float64       `json:"foreign_cpu_share"`

	Clients  int            `json:"clients"` // writers of the concurrent put and Kubernetes-shaped runs
	Put1     *BenchSummary  `json:"put_1,omitempty"`
	Put100   *BenchSummary  `json:"put_100,omitempty"`
	PutNote  string         `json:"put_note,omitempty"`
	RangeS   *BenchSummary  `json:"range_serializable,omitempty"`
	RangeL   *BenchSummary  `json:"range_linearizable,omitempty"`
	WatchPut *BenchSummary  `json:"watch_put,omitempty"`
	Watch    *BenchSummary  `json:"watch_latency,omitempty"`
	Kube     *KubeResult    `json:"kube,omitempty"`
	Mem      *MemResult     `json:"memory,omitempty"`
	Compact  *CompactResult `json:"compaction,omitempty"`
	Profile  string         `json:"profile,omitempty"`     // pprof file
	ProfTop  string         `json:"profile_top,omitempty"` // go tool pprof -top
}

func (t *TargetResult) fail(scenario string, err error) {
	slog.Error("scenario failed", "target", t.Name, "scenario", scenario, "err", err)
	t.Errors = append(t.Errors, scenario+": "+err.Error())
}

type bencher struct {
	cfg     Config
	workDir string
	logDir  string
}

func run(ctx context.Context, cfg Config) error {
	if cfg.FromJSON != "" {
		return rerender(cfg)
	}
	// Servers run in their data directories: make paths absolute first.
	for _, p := range []*string{&cfg.BinDir, &cfg.WorkDir, &cfg.ProfileDir} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("resolving %s: %w", *p, err)
		}
		*p = abs
	}
	for _, bin := range []string{"benchmark"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, bin)); err != nil {
			return fmt.Errorf("%s missing in %s (make tools): %w", bin, cfg.BinDir, err)
		}
	}
	workDir := cfg.WorkDir
	if workDir == "" {
		d, err := os.MkdirTemp("", "keelson-bench-")
		if err != nil {
			return fmt.Errorf("creating work dir: %w", err)
		}
		workDir = d
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	if !cfg.KeepWork && cfg.WorkDir == "" {
		defer os.RemoveAll(workDir)
	}
	b := &bencher{cfg: cfg, workDir: workDir, logDir: filepath.Join(workDir, "logs")}
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return fmt.Errorf("creating log dir: %w", err)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("creating profile dir: %w", err)
		}
	}
	slog.Info("benchmark run", "work_dir", workDir, "targets", cfg.Targets, "scenarios", cfg.Scenarios, "quick", cfg.Quick)

	res := &Results{Started: time.Now(), Command: cfg.Command, Quick: cfg.Quick, Sizes: cfg.Sizes}
	res.Machine = readMachine(workDir)
	if fs, err := probeFsync(workDir, 200); err == nil {
		res.Machine.Fsync = fs
	} else {
		slog.Warn("fsync probe failed", "err", err)
	}
	start := sampleCPU()
	for _, name := range cfg.Targets {
		if ctx.Err() != nil {
			break
		}
		spec, _ := specByName(name)
		res.Targets = append(res.Targets, b.runTarget(ctx, spec))
	}
	res.Foreign = foreignShare(start, sampleCPU())
	res.Machine.LoadAfter = loadavg()
	res.Took = time.Since(res.Started)
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}

	md := renderMarkdown(res)
	if cfg.Out == "" {
		fmt.Print(md)
	} else if err := writeDoc(cfg.Out, md); err != nil {
		return err
	}
	if cfg.JSONOut != "" {
		j, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(cfg.JSONOut, j, 0o644); err != nil {
			return fmt.Errorf("writing json: %w", err)
		}
	}
	if cfg.KeepWork || cfg.WorkDir != "" {
		slog.Info("kept work dir", "path", workDir)
	}
	slog.Info("done", "took", res.Took.Round(time.Second), "out", cfg.Out)
	return nil
}

// rerender writes the markdown for saved results.
func rerender(cfg Config) error {
	b, err := os.ReadFile(cfg.FromJSON)
	if err != nil {
		return fmt.Errorf("reading results: %w", err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("decoding results: %w", err)
	}
	md := renderMarkdown(&res)
	if cfg.Out == "" {
		fmt.Print(md)
		return nil
	}
	return writeDoc(cfg.Out, md)
}

// runTarget runs every selected scenario against fresh instances of spec.
func (b *bencher) runTarget(ctx context.Context, spec targetSpec) *TargetResult {
	tr := &TargetResult{Name: spec.Name, Label: spec.Label}
	if _, err := os.Stat(filepath.Join(b.cfg.BinDir, spec.Kind)); err != nil {
		tr.Skipped = fmt.Sprintf("%s binary not found in %s", spec.Kind, b.cfg.BinDir)
		slog.Warn("skipping target", "target", spec.Name, "why", tr.Skipped)
		return tr
	}
	if spec.Kind == "keelson" && spec.DB != "" && !keelsonHasBackendFlag(ctx, b.cfg.BinDir) {
		tr.Skipped = "keelson store has no --backend flag yet"
		slog.Warn("skipping target", "target", spec.Name, "why", tr.Skipped)
		return tr
	}
	tr.Version = binaryVersion(ctx, b.cfg.BinDir, spec.Kind)
	tr.Durability = durabilityOf(spec)
	started := time.Now()
	cpu0 := sampleCPU()
	defer func() {
		tr.Took = time.Since(started)
		tr.Foreign = foreignShare(cpu0, sampleCPU())
		slog.Info("target done", "target", spec.Name, "took", tr.Took.Round(time.Second), "foreign_cpu", fmt.Sprintf("%.0f%%", 100*tr.Foreign))
	}()
	slog.Info("target", "name", spec.Name)

	serverScenarios := []string{scPut, scRange, scWatch, scKube}
	if slices.ContainsFunc(serverScenarios, b.cfg.has) {
		b.mainScenarios(ctx, spec, tr)
	}
	if b.cfg.has(scMemory) && ctx.Err() == nil && tr.Skipped == "" {
		l := &live{b: b, spec: spec, tr: tr, parent: ctx, phase: "memory"}
		r, sctx, err := l.get()
		if err == nil {
			var m *MemResult
			m, err = runMemory(sctx, sizesFor(b.cfg.Sizes, spec), r.writeEndpoint(), r.servers[0].pid())
			err = l.scenarioErr(err)
			if err == nil {
				tr.Mem = m
				slog.Info("memory", "target", spec.Name, "rss_mib", m.RSSKiB/1024, "anon_mib", m.AnonKiB/1024, "load_s", fmt.Sprintf("%.1f", m.LoadSecs))
			}
		}
		if err != nil {
			tr.fail(scMemory, err)
		}
		l.stop()
	}
	if b.cfg.has(scCompact) && ctx.Err() == nil && tr.Skipped == "" {
		if spec.Kind == "kine" {
			tr.Errors = append(tr.Errors, "compaction: not run (kine compacts on its own schedule; its Compact RPC does not run one on demand)")
		} else {
			l := &live{b: b, spec: spec, tr: tr, parent: ctx, phase: "compact"}
			r, sctx, err := l.get()
			if err == nil {
				var c *CompactResult
				c, err = runCompact(sctx, sizesFor(b.cfg.Sizes, spec), r.writeEndpoint())
				err = l.scenarioErr(err)
				if err == nil {
					tr.Compact = c
					slog.Info("result", "target", spec.Name, "run", "compact", "compact_s", fmt.Sprintf("%.2f", c.CompactSecs),
						"p99_without_ms", fmt.Sprintf("%.2f", c.Without.P99), "p99_during_ms", fmt.Sprintf("%.2f", c.During.P99))
				}
			}
			if err != nil {
				tr.fail(scCompact, err)
			}
			l.stop()
		}
	}
	return tr
}

// start brings up fresh instances of spec (a new directory, or a new
// database) and registers their removal.
func (b *bencher) start(ctx context.Context, spec targetSpec, phase string, tr *TargetResult) (*running, error) {
	dir := filepath.Join(b.workDir, spec.Name+"-"+phase)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	var dbURL string
	var drop func()
	if spec.DB == "postgres" || spec.DB == "mysql" {
		u, dur, d, err := b.freshDB(ctx, spec)
		if err != nil {
			return nil, err
		}
		dbURL, drop = u, d
		tr.Durability = dur
	}
	r, err := b.startTarget(ctx, spec, dir, dbURL)
	if err != nil {
		if drop != nil && !b.cfg.KeepWork {
			drop()
		}
		return nil, err
	}
	if !b.cfg.KeepWork {
		r.cleanup = append(r.cleanup, func() { _ = os.RemoveAll(dir) })
		if drop != nil {
			r.cleanup = append(r.cleanup, drop)
		}
	}
	return r, nil
}

func durabilityOf(spec targetSpec) string {
	switch {
	case spec.Kind == "keelson" && spec.DB == "":
		return "write-ahead log, fdatasync before acknowledging (group commit)"
	case spec.Kind == "etcd":
		return "default: WAL fsync before acknowledging, bbolt commits every 100 ms"
	case spec.Name == "kine-sqlite":
		return "SQLite WAL, synchronous=FULL (kine's default NORMAL does not sync on commit)"
	case spec.Name == "kine-sqlite-default":
		return "SQLite WAL, synchronous=NORMAL (kine's default; commits are not synced)"
	}
	return ""
}

// sizesFor lowers the writer count for SQL targets (sqlClientsWhy).
func sizesFor(s Sizes, spec targetSpec) Sizes {
	if spec.DB == "postgres" || spec.DB == "mysql" {
		s.PutClients = min(s.PutClients, s.SQLClients)
		s.KubeClients = min(s.KubeClients, s.SQLClients)
		s.MemClients = min(s.MemClients, s.SQLClients)
	}
	return s
}

// live keeps one started target for the server scenarios. A scenario runs
// under a context that is cancelled when any instance exits (so a crashed
// server cannot hang a load), and the next scenario gets fresh instances.
type live struct {
	b        *bencher
	spec     targetSpec
	tr       *TargetResult
	parent   context.Context
	phase    string
	r        *running
	ctx      context.Context
	cancel   context.CancelCauseFunc
	restarts int
}

var errExited = errors.New("server exited")

func (l *live) get() (*running, context.Context, error) {
	if l.r != nil && l.r.alive() == nil {
		return l.r, l.ctx, nil
	}
	if l.r != nil {
		l.tr.fail("server", l.r.alive())
		l.stop()
		if l.restarts++; l.restarts > 2 {
			return nil, nil, errors.New("server exited three times; giving up on this target")
		}
		slog.Warn("restarting target with fresh state", "target", l.spec.Name)
	}
	r, err := l.b.start(l.parent, l.spec, fmt.Sprintf("%s%d", l.phase, l.restarts), l.tr)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(l.parent)
	for _, srv := range r.servers {
		go func() {
			select {
			case <-srv.exited:
				cancel(fmt.Errorf("%w: %s", errExited, srv.name))
			case <-ctx.Done():
			}
		}()
	}
	l.r, l.ctx, l.cancel = r, ctx, cancel
	return r, ctx, nil
}

// scenarioErr prefers the reason the scenario's context was cancelled.
func (l *live) scenarioErr(err error) error {
	if err != nil && l.ctx != nil {
		if cause := context.Cause(l.ctx); cause != nil && errors.Is(cause, errExited) {
			return fmt.Errorf("%w (%v)", cause, err)
		}
	}
	return err
}

func (l *live) stop() {
	if l.r == nil {
		return
	}
	l.cancel(nil)
	l.r.stop()
	l.r = nil
}

func (b *bencher) mainScenarios(ctx context.Context, spec targetSpec, tr *TargetResult) {
	s := sizesFor(b.cfg.Sizes, spec)
	tr.Clients = s.PutClients
	l := &live{b: b, spec: spec, tr: tr, parent: ctx, phase: "main"}
	defer l.stop()
	if _, _, err := l.get(); err != nil {
		tr.Skipped = err.Error()
		return
	}
	sqlTarget := spec.DB == "postgres" || spec.DB == "mysql"
	common := func(ep string, clients int) []string {
		return []string{"--endpoints", ep, "--conns", fmt.Sprint(clients), "--clients", fmt.Sprint(clients), "--precise"}
	}
	bench := func(name string, clients int, args ...string) (*BenchSummary, error) {
		r, sctx, err := l.get()
		if err != nil {
			return nil, err
		}
		out, err := b.runBenchmarkTool(sctx, tr.Name+"-"+name, append(common(r.writeEndpoint(), clients), args...)...)
		if err != nil {
			return nil, l.scenarioErr(err)
		}
		sum, err := parseBenchReport(out)
		if errors.Is(err, errNoSummary) && sum.ErrorCount() > 0 {
			// Every request failed (e.g. kine has no serializable reads):
			// a row of errors, listed under the tables.
			slog.Warn("every request failed", "target", tr.Name, "run", name, "errors", sum.Errors)
			return &sum, nil
		}
		if err != nil {
			return nil, err
		}
		slog.Info("result", "target", tr.Name, "run", name, "rps", fmt.Sprintf("%.0f", sum.RPS), "p99_ms", fmt.Sprintf("%.2f", sum.Percentiles["99"]*1000), "errors", sum.ErrorCount())
		return &sum, nil
	}
	putArgs := func(total int) []string {
		return []string{"put", "--key-size", "8", "--val-size", fmt.Sprint(s.PutValueSize), "--total", fmt.Sprint(total),
			"--sequential-keys=false", "--key-space-size", fmt.Sprint(s.PutKeySpace)}
	}
	// goLoad runs the put loader; if the server crashes under it (kine's
	// Put has a race on concurrent puts of one key), the crash is noted and
	// the run is repeated once on fresh state.
	goLoad := func(clients, total int) (*BenchSummary, error) {
		for attempt := 0; ; attempt++ {
			r, sctx, err := l.get()
			if err != nil {
				return nil, err
			}
			sum, err := runPutLoad(sctx, r.writeEndpoint(), total, clients, s.PutKeySpace, s.PutValueSize, b.cfg.PutDistinct)
			if err == nil {
				return sum, nil
			}
			err = l.scenarioErr(err)
			if !errors.Is(err, errExited) || attempt > 0 {
				return nil, err
			}
			tr.fail(fmt.Sprintf("put %d clients (first attempt, repeated)", clients), err)
		}
	}
	if b.cfg.has(scPut) && !sqlTarget {
		var err error
		if tr.Put1, err = bench("put-1", 1, putArgs(s.PutTotal1)...); err != nil {
			tr.fail("put 1 client", err)
		}
		if tr.Put100, err = bench("put-100", s.PutClients, putArgs(s.PutTotal100)...); err != nil {
			tr.fail("put 100 clients", err)
		}
	}
	if b.cfg.has(scPut) && sqlTarget {
		tr.PutNote = putLoadNote
		if b.cfg.PutDistinct {
			tr.PutNote += "; with --put-distinct-keys every put of a run writes a key of its own (`d<clients>-%08x` of the put's index) instead"
		}
		for _, run := range []struct {
			clients, total int
			dst            **BenchSummary
		}{{1, s.PutTotal1, &tr.Put1}, {s.PutClients, s.PutTotal100, &tr.Put100}} {
			sum, err := goLoad(run.clients, run.total)
			if err != nil {
				tr.fail(fmt.Sprintf("put %d clients", run.clients), err)
				continue
			}
			*run.dst = sum
			slog.Info("result", "target", tr.Name, "run", fmt.Sprintf("put-%d", run.clients), "rps", fmt.Sprintf("%.0f", sum.RPS), "p99_ms", fmt.Sprintf("%.2f", sum.Percentiles["99"]*1000), "errors", sum.ErrorCount())
		}
	}
	if b.cfg.has(scRange) {
		const key = "/bench/range-key"
		r, sctx, err := l.get()
		if err == nil {
			err = putOne(sctx, r.writeEndpoint(), key, strings.Repeat("v", s.PutValueSize))
		}
		if err != nil {
			tr.fail("range", err)
		} else {
			if tr.RangeS, err = bench("range-s", s.RangeClients, "range", key, "--consistency", "s", "--total", fmt.Sprint(s.RangeTotal)); err != nil {
				tr.fail("range serializable", err)
			}
			if tr.RangeL, err = bench("range-l", s.RangeClients, "range", key, "--consistency", "l", "--total", fmt.Sprint(s.RangeTotal)); err != nil {
				tr.fail("range linearizable", err)
			}
		}
	}
	if b.cfg.has(scWatch) && sqlTarget {
		tr.Errors = append(tr.Errors, "watch-latency: not run (the tool's random binary keys are rejected by kine on SQL); the Kubernetes-shaped load measures watch lag across instances instead")
	}
	if b.cfg.has(scWatch) && !sqlTarget {
		err := func() error {
			r, sctx, err := l.get()
			if err != nil {
				return err
			}
			args := append(common(r.writeEndpoint(), 10), "watch-latency", "--put-total", fmt.Sprint(s.WatchPuts), "--put-rate", fmt.Sprint(s.WatchRate),
				"--streams", fmt.Sprint(s.WatchStreams), "--watchers-per-stream", fmt.Sprint(s.WatchPerStrm),
				"--key-size", "32", "--val-size", fmt.Sprint(s.PutValueSize))
			out, err := b.runBenchmarkTool(sctx, tr.Name+"-watch-latency", args...)
			if err != nil {
				return l.scenarioErr(err)
			}
			put, watch, err := parseWatchLatency(out)
			if err != nil {
				return err
			}
			tr.WatchPut, tr.Watch = &put, &watch
			slog.Info("result", "target", tr.Name, "run", "watch-latency", "p50_ms", fmt.Sprintf("%.2f", watch.Percentiles["50"]*1000), "p99_ms", fmt.Sprintf("%.2f", watch.Percentiles["99"]*1000))
			return nil
		}()
		if err != nil {
			tr.fail("watch-latency", err)
		}
	}
	if b.cfg.has(scKube) {
		err := func() error {
			r, sctx, err := l.get()
			if err != nil {
				return err
			}
			var afterLists func(func(context.Context) error) error
			if b.cfg.ProfileDir != "" && (spec.Kind == "keelson" || spec.Kind == "etcd") {
				afterLists = func(list func(context.Context) error) error {
					return b.profileLists(sctx, r, tr, list)
				}
			}
			k, err := runKube(sctx, s, r.writeEndpoint(), r.watchEndpoint(), afterLists)
			if err != nil {
				return l.scenarioErr(err)
			}
			tr.Kube = k
			slog.Info("result", "target", tr.Name, "run", "kube", "creates_per_s", fmt.Sprintf("%.0f", k.CreatesPerS), "updates_per_s", fmt.Sprintf("%.0f", k.UpdatesPerS),
				"list_p50_ms", fmt.Sprintf("%.1f", k.List.P50), "watch_lag_p99_ms", fmt.Sprintf("%.2f", k.WatchLag.P99), "missing", k.WatchMissing)
			return nil
		}()
		if err != nil {
			tr.fail("kube", err)
		}
	}
	if b.cfg.ProfileDir != "" && (spec.Kind == "keelson" || spec.Kind == "etcd") && ctx.Err() == nil {
		err := func() error {
			r, sctx, err := l.get()
			if err != nil {
				return err
			}
			load := func(total int) error {
				if sqlTarget {
					_, err := runPutLoad(sctx, r.writeEndpoint(), total, s.PutClients, s.PutKeySpace, s.PutValueSize, b.cfg.PutDistinct)
					return err
				}
				_, err := b.runBenchmarkTool(sctx, tr.Name+"-profile-load", append(common(r.writeEndpoint(), s.PutClients), putArgs(total)...)...)
				return err
			}
			return b.profile(sctx, r, tr, load)
		}()
		if err != nil {
			tr.fail("cpu profile", err)
		}
	}
	if l.r != nil {
		if err := l.r.alive(); err != nil {
			tr.fail("server", err)
		}
	}
}

func putOne(ctx context.Context, ep, key, value string) error {
	cli, err := newClient(ep)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		return fmt.Errorf("putting %s: %w", key, err)
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sizes are the amounts of work per target. Quick and Full are the two
// presets; every field can be overridden by a flag.
type Sizes struct {
	PutTotal1     int // puts with 1 client
	PutTotal100   int // puts with PutClients clients
	PutClients    int // the "100 clients" of the write scenario
	PutKeySpace   int // --key-space-size of the benchmark tool
	PutValueSize  int // --val-size
	RangeTotal    int // ranges per consistency
	RangeClients  int
	WatchPuts     int // watch-latency --put-total
	WatchRate     int // watch-latency --put-rate
	WatchStreams  int
	WatchPerStrm  int
	KubeObjects   int // objects created, then updated once each
	KubeValueSize int
	KubeClients   int // concurrent writers
	KubeConns     int // gRPC connections they share
	KubeLists     int // full paginated lists
	KubeListers   int // concurrent listers
	KubePageSize  int
	MemKeys       int
	MemValueSize  int
	MemClients    int
	SQLClients    int // writers against the SQL targets (see sqlClientsWhy)
	CompactFill   int // puts written before compacting (the history to drop)
	CompactKeys   int // keys they go to
	CompactRate   int // puts/s offered while measuring write latency
}

// sqlClientsWhy is why SQL targets are driven with fewer writers.
const sqlClientsWhy = "kine holds a transaction while it waits for a second pooled connection: with a bounded pool (--datastore-max-open-connections) at or below the number of concurrent writers every connection ends up idle in transaction and kine deadlocks (seen here at 100 writers on a pool of 45), and an unbounded pool needs about two connections per writer, beyond PostgreSQL's max_connections of 100 on this machine. SQL targets, keelson's included, are therefore driven with fewer writers and kine's writer instance gets a pool of that plus 20"

// QuickSizes is a smoke run: seconds per target.
func QuickSizes() Sizes {
	return Sizes{
		PutTotal1: 200, PutTotal100: 2000, PutClients: 100, PutKeySpace: 100000, PutValueSize: 256,
		RangeTotal: 2000, RangeClients: 100,
		WatchPuts: 100, WatchRate: 100, WatchStreams: 10, WatchPerStrm: 10,
		KubeObjects: 1000, KubeValueSize: 1024, KubeClients: 100, KubeConns: 10,
		KubeLists: 4, KubeListers: 2, KubePageSize: 500,
		MemKeys: 2000, MemValueSize: 10240, MemClients: 100, SQLClients: 40,
		CompactFill: 5000, CompactKeys: 100, CompactRate: 500,
	}
}

// FullSizes is the documented run (about 10-15 minutes on 2 cores for the
// embedded targets and kine on SQLite).
func FullSizes() Sizes {
	return Sizes{
		PutTotal1: 2000, PutTotal100: 30000, PutClients: 100, PutKeySpace: 100000, PutValueSize: 256,
		RangeTotal: 20000, RangeClients: 100,
		WatchPuts: 1000, WatchRate: 200, WatchStreams: 10, WatchPerStrm: 10,
		KubeObjects: 10000, KubeValueSize: 1024, KubeClients: 100, KubeConns: 10,
		KubeLists: 20, KubeListers: 2, KubePageSize: 500,
		MemKeys: 100000, MemValueSize: 10240, MemClients: 100, SQLClients: 40,
		CompactFill: 100000, CompactKeys: 1000, CompactRate: 1000,
	}
}

// Scenario names, in run order.
const (
	scPut     = "put"
	scRange   = "range"
	scWatch   = "watch"
	scKube    = "kube"
	scMemory  = "memory"
	scCompact = "compact"
)

var allScenarios = []string{scPut, scRange, scWatch, scKube, scMemory, scCompact}

// Config is everything one run needs; flags fill it (see main.go).
type Config struct {
	BinDir      string   // keelson, etcd, kine, benchmark
	Out         string   // markdown file to (re)generate; "" = none
	JSONOut     string   // raw results; "" = none
	WorkDir     string   // parent of data dirs and logs (same disk for every target)
	KeepWork    bool     // keep data dirs, logs and databases
	Targets     []string // see targetSpecs
	Scenarios   []string
	Quick       bool
	Sizes       Sizes
	PostgresURL string // admin connection; fresh databases are created beside it
	MySQLDSN    string // admin DSN (go-sql-driver form)
	ProfileDir  string // CPU profiles of keelson targets under write load; "" = off
	ProfileSecs int
	PutDistinct bool   // SQL put loader: every put writes a key of its own
	Command     string // the command line, for the report
	FromJSON    string // re-render saved results instead of running
}

// Default is the full run against the embedded peers and every SQL target.
func Default() Config {
	return Config{
		BinDir:      "bin",
		WorkDir:     "",
		Targets:     []string{"keelson", "etcd", "kine-sqlite", "keelson-postgres", "kine-postgres", "keelson-mysql", "kine-mysql"},
		Scenarios:   slices.Clone(allScenarios),
		Sizes:       FullSizes(),
		PostgresURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		MySQLDSN:    "root@tcp(127.0.0.1:3306)/",
		ProfileSecs: 10,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.BinDir == "" {
		return errors.New("--bin is required")
	}
	if len(c.Targets) == 0 {
		return errors.New("no targets selected")
	}
	for _, t := range c.Targets {
		if _, ok := specByName(t); !ok {
			return fmt.Errorf("unknown target %q (known: %s)", t, strings.Join(targetNames(), ", "))
		}
	}
	if len(c.Scenarios) == 0 {
		return errors.New("no scenarios selected")
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ", "))
		}
	}
	s := c.Sizes
	for name, v := range map[string]int{
		"put-total-1": s.PutTotal1, "put-total-100": s.PutTotal100, "put-clients": s.PutClients,
		"key-space": s.PutKeySpace, "range-total": s.RangeTotal, "range-clients": s.RangeClients,
		"watch-puts": s.WatchPuts, "watch-rate": s.WatchRate, "kube-objects": s.KubeObjects,
		"kube-clients": s.KubeClients, "kube-conns": s.KubeConns, "kube-lists": s.KubeLists,
		"kube-listers": s.KubeListers, "page-size": s.KubePageSize, "mem-keys": s.MemKeys,
		"mem-value-size": s.MemValueSize, "mem-clients": s.MemClients,
		"sql-clients": s.SQLClients, "watch-streams": s.WatchStreams, "watch-watchers-per-stream": s.WatchPerStrm,
		"compact-fill": s.CompactFill, "compact-keys": s.CompactKeys, "compact-rate": s.CompactRate,
	} {
		if v <= 0 {
			return fmt.Errorf("--%s must be positive, got %d", name, v)
		}
	}
	if c.ProfileDir != "" && c.ProfileSecs <= 0 {
		return errors.New("--profile-seconds must be positive")
	}
	return nil
}

func (c Config) has(scenario string) bool { return slices.Contains(c.Scenarios, scenario) }

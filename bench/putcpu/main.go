// Command putcpu measures the CPU each process spends per put while
// concurrent writers put distinct keys through one store instance on a SQL
// database (keelson store or kine), as bench/store's put scenario drives
// them: a second instance on the same database (with a watcher) follows the
// writes. It reads utime+stime from /proc before and after the measured
// puts for the store, the second instance, itself (the load generator), the
// database's backends (PostgreSQL: those connected to the test database;
// MariaDB: the whole mariadbd, shared with anything else using it) and the
// whole machine. Run it under the benchmark lock:
//
//	flock /tmp/keelson-bench.lock go run ./bench/putcpu --bin $PWD/bin/keelson --db postgres
//	flock /tmp/keelson-bench.lock go run ./bench/putcpu --kind kine --bin $PWD/bin/kine --db mysql
//
// It is a measuring aid, not part of the generated report
// (docs/benchmarks.md, "SQL writes: the CPU bound").
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func freeAddr() string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

// ticks returns utime+stime of pid (and its threads) in clock ticks.
func ticks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	s = s[strings.LastIndexByte(s, ')')+2:]
	f := strings.Fields(s)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func procsNamed(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(c)) == name {
			out = append(out, pid)
		}
	}
	return out
}

func cpuStat() (busy, total int64) {
	b, _ := os.ReadFile("/proc/stat")
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)[1:]
	for i, x := range f {
		v, _ := strconv.ParseInt(x, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return
}

func main() {
	kind := flag.String("kind", "keelson", "keelson or kine")
	bin := flag.String("bin", "bin/keelson", "the store's binary (an absolute path: it runs in a temporary directory)")
	db := flag.String("db", "postgres", "postgres or mysql")
	name := flag.String("name", "sqlw2_probe", "database name (recreated)")
	clients := flag.Int("clients", 40, "writers")
	total := flag.Int("total", 20000, "puts measured")
	warm := flag.Int("warm", 2000, "warm-up puts")
	prof := flag.String("profile", "", "write a CPU profile of the store here")
	profSecs := flag.Int("profile-seconds", 5, "profile length")
	second := flag.Bool("second", true, "run a second instance on the database, with a watcher")
	prof2 := flag.Bool("profile-second", false, "profile the second instance")
	extra := flag.String("args", "", "extra store args (space separated)")
	flag.Parse()
	ctx := context.Background()

	var url string
	var dbPids func() []int
	switch *db {
	case "postgres":
		c, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
		must(err)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+*name+" WITH (FORCE)")
		_, err = c.Exec(ctx, "CREATE DATABASE "+*name)
		must(err)
		url = "postgres://postgres@127.0.0.1:5432/" + *name + "?sslmode=disable"
		dbPids = func() []int {
			rows, err := c.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", *name)
			must(err)
			var out []int
			for rows.Next() {
				var p int
				must(rows.Scan(&p))
				out = append(out, p)
			}
			return out
		}
	case "mysql":
		c, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
		must(err)
		_, _ = c.Exec("DROP DATABASE IF EXISTS " + *name)
		_, err = c.Exec("CREATE DATABASE " + *name)
		must(err)
		url = "mysql://root@tcp(127.0.0.1:3306)/" + *name
		dbPids = func() []int { return procsNamed("mariadbd") }
	}
	listen, metrics := freeAddr(), freeAddr()
	var args []string
	if *kind == "keelson" {
		args = []string{"store", "--listen", listen, "--metrics-listen", metrics, "--backend", url}
	} else {
		args = []string{"--listen-address", listen, "--endpoint", url, "--metrics-bind-address", metrics,
			"--datastore-max-open-connections", strconv.Itoa(*clients + 20)}
	}
	if *extra != "" {
		args = append(args, strings.Fields(*extra)...)
	}
	dir, _ := os.MkdirTemp("", "sqlw2probe")
	logf, _ := os.Create(filepath.Join(dir, "store.log"))
	fmt.Println("log:", filepath.Join(dir, "store.log"))
	cmd := exec.Command(*bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	var cmd2 *exec.Cmd
	var metrics2 string
	if *second {
		a2 := append([]string(nil), args...)
		l2, m2 := freeAddr(), freeAddr()
		metrics2 = m2
		for i := range a2 {
			if a2[i] == listen {
				a2[i] = l2
			} else if a2[i] == metrics {
				a2[i] = m2
			} else if a2[i] == strconv.Itoa(*clients+20) {
				a2[i] = "5"
			}
		}
		cmd2 = exec.Command(*bin, a2...)
		cmd2.Dir = dir
		cmd2.Stdout, cmd2.Stderr = logf, logf
		cmd2.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		time.Sleep(2 * time.Second) // let the first migrate
		must(cmd2.Start())
		defer func() { cmd2.Process.Signal(syscall.SIGTERM); cmd2.Wait() }()
		c2, err := clientv3.New(clientv3.Config{Endpoints: []string{l2}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		must(err)
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := c2.Get(cctx, "x")
			cancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// a watcher on the second instance, as the bench's watch-lag
		// clients would be
		go func() {
			for range c2.Watch(ctx, "\x00", clientv3.WithFromKey()) {
			}
		}()
	}
	conns := make([]*clientv3.Client, *clients)
	for i := range conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{listen}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		must(err)
		conns[i] = c
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := conns[0].Get(cctx, "x")
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw := make([]byte, 256)
	_, _ = rand.Read(raw)
	value := string(raw)
	var seq atomic.Int64
	run := func(n int) (time.Duration, []time.Duration) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var lats []time.Duration
		var left atomic.Int64
		left.Store(int64(n))
		start := time.Now()
		for w := range *clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var my []time.Duration
				for left.Add(-1) >= 0 {
					k := fmt.Sprintf("d%d-%08x", *clients, seq.Add(1))
					t := time.Now()
					if _, err := conns[w].Put(ctx, k, value); err != nil {
						fmt.Fprintln(os.Stderr, "put:", err)
					}
					my = append(my, time.Since(t))
				}
				mu.Lock()
				lats = append(lats, my...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return time.Since(start), lats
	}
	run(*warm)
	self := os.Getpid()
	pids := dbPids()
	allPg := procsNamed("postgres")
	t2 := func() int64 {
		if cmd2 == nil {
			return 0
		}
		return ticks(cmd2.Process.Pid)
	}
	snap := func() (int64, int64, int64, int64, int64, int64) {
		var d, a int64
		for _, p := range pids {
			d += ticks(p)
		}
		for _, p := range allPg {
			a += ticks(p)
		}
		b, t := cpuStat()
		return ticks(cmd.Process.Pid), ticks(self), d, a, b, t
	}
	if *prof != "" {
		go func() {
			time.Sleep(time.Second)
			m := metrics
			if *prof2 {
				m = metrics2
			}
			resp, err := http.Get("http://" + m + "/debug/pprof/profile?seconds=" + strconv.Itoa(*profSecs))
			if err != nil {
				fmt.Fprintln(os.Stderr, "profile:", err)
				return
			}
			defer resp.Body.Close()
			f, _ := os.Create(*prof)
			io.Copy(f, resp.Body)
			f.Close()
		}()
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	pids = dbPids()
	s0, l0, d0, a0, b0, t0 := snap()
	x0 := t2()
	el, lats := run(*total)
	s1, l1, d1, a1, b1, t1 := snap()
	x1 := t2()
	load2, _ := os.ReadFile("/proc/loadavg")
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	n := float64(*total)
	us := func(tk int64) float64 { return float64(tk) * 10000 / n } // 100 ticks/s -> µs per put
	fmt.Printf("%s/%s clients=%d puts=%d elapsed=%.2fs rate=%.0f/s p50=%v p99=%v\n", *kind, *db, *clients, *total, el.Seconds(), n/el.Seconds(),
		lats[len(lats)/2].Round(time.Microsecond), lats[len(lats)*99/100].Round(time.Microsecond))
	fmt.Printf("cpu µs/put: second instance %.0f\n", us(x1-x0))
	fmt.Println("(MariaDB: db-backends is the whole mariadbd process)")
	fmt.Printf("cpu µs/put: store %.0f  loader %.0f  db-backends(%d) %.0f  all-postgres %.0f  | machine busy %.0f%% (%.0f µs/put of 2 cores)\n",
		us(s1-s0), us(l1-l0), len(pids), us(d1-d0), us(a1-a0), 100*float64(b1-b0)/float64(t1-t0), us(b1-b0))
	fmt.Printf("loadavg before %s after %s", strings.TrimSpace(string(load1)), load2)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

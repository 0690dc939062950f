package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keelson-dev/keelson/bench/internal/benchutil"
	"github.com/keelson-dev/keelson/internal/testenv"
)

// controlPlane is one `keelson federation` process.
type controlPlane struct {
	cmd     *exec.Cmd
	metrics string // host:port of /metrics and /debug/pprof
	log     string
	started time.Time
	exited  chan struct{}
}

// startControlPlane runs `keelson federation` against the host and waits
// until it logs that its caches synced and its workers run.
func startControlPlane(ctx context.Context, bin, hostKubeconfig, dir string, extra []string) (*controlPlane, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("federation-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"federation", "--kubeconfig", hostKubeconfig, "--metrics-addr", addr,
		"--health-interval", "1s", "--health-timeout", "2s"}, extra...)
	cmd := exec.Command(filepath.Join(bin, "keelson"), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cp := &controlPlane{cmd: cmd, metrics: addr, log: logPath, exited: make(chan struct{})}
	cp.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting keelson federation: %w", err)
	}
	go func() { _ = cmd.Wait(); close(cp.exited) }()
	err = poll(ctx, 2*time.Minute, func() bool {
		select {
		case <-cp.exited:
			return true
		default:
		}
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "federation control plane started")
	})
	select {
	case <-cp.exited:
		return nil, fmt.Errorf("keelson federation exited; log %s:\n%s", logPath, tail(logPath, 20))
	default:
	}
	if err != nil {
		cp.stop()
		return nil, fmt.Errorf("keelson federation did not start: %w; log %s:\n%s", err, logPath, tail(logPath, 20))
	}
	return cp, nil
}

func (cp *controlPlane) pid() int { return cp.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 30 s, then kills.
func (cp *controlPlane) stop() {
	_ = syscall.Kill(-cp.pid(), syscall.SIGTERM)
	select {
	case <-cp.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cp.pid(), syscall.SIGKILL)
		<-cp.exited
	}
}

// scrape returns the control plane's metrics as name{labels} → value.
func (cp *controlPlane) scrape(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.metrics+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[l[:i]] = v
	}
	return out, sc.Err()
}

// sumMetric adds every series of name whose labels contain all of want
// (each like `op="apply"`).
func sumMetric(m map[string]float64, name string, want ...string) float64 {
	var s float64
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// profile fetches a CPU profile of secs seconds into file.
func (cp *controlPlane) profile(ctx context.Context, secs int, file string) error {
	return cp.fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", cp.metrics, secs), file)
}

// heapProfile fetches a heap profile into file.
func (cp *controlPlane) heapProfile(ctx context.Context, file string) error {
	return cp.fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/heap", cp.metrics), file)
}

func (cp *controlPlane) fetch(ctx context.Context, url, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// memory of a process from /proc/PID/status, MiB.
type memory struct{ rss, hwm float64 }

func procMemory(pid int) memory {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}
	}
	var m memory
	for l := range strings.SplitSeq(string(raw), "\n") {
		for _, f := range []struct {
			prefix string
			dst    *float64
		}{{"VmRSS:", &m.rss}, {"VmHWM:", &m.hwm}} {
			if v, ok := strings.CutPrefix(l, f.prefix); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				*f.dst = kb / 1024
			}
		}
	}
	return m
}

// cpuSeconds is utime+stime of a process (USER_HZ 100).
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// serverCPU is the CPU-seconds used so far by the members' apiservers and
// stores, and by the host's.
func (b *bench) serverCPU() (members, host float64) {
	sum := func(e *testenv.Env) float64 {
		var t float64
		for _, a := range e.APIServers {
			t += cpuSeconds(a.Pid())
		}
		for _, s := range e.Stores {
			t += cpuSeconds(s.Pid())
		}
		return t
	}
	for _, m := range b.members {
		members += sum(m)
	}
	return members, sum(b.host)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// poll checks cond every 50 ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return benchutil.Poll(ctx, timeout, 50*time.Millisecond, cond)
}

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine describes where the figures were taken.
type Machine struct {
	NumCPU     int          `json:"num_cpu"`
	CPUModel   string       `json:"cpu_model"`
	MemTotal   string       `json:"mem_total"`
	Kernel     string       `json:"kernel"`
	Disk       string       `json:"disk"`
	GoVersion  string       `json:"go_version"`
	Fsync      latencyStats `json:"fsync"` // 4 KiB write + fdatasync on the data disk
	LoadBefore string       `json:"load_before"`
	LoadAfter  string       `json:"load_after"`
}

func readMachine(workDir string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if kib, ok := parseProcStatus(b)["MemTotal"]; ok {
			m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Disk = diskOf(workDir)
	m.LoadBefore = loadavg()
	return m
}

func cpuModel(cpuinfo string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// diskOf names the filesystem and device holding dir, and whether the
// kernel calls it rotational.
func diskOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	best, desc := "", "unknown"
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent maj:min root mountpoint opts ... - fstype source superopts
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		mp := f[4]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
			dev := f[sep+2]
			desc = fmt.Sprintf("%s on %s (%s)", f[sep+1], dev, mp)
			if rot, err := os.ReadFile("/sys/block/" + filepath.Base(dev) + "/queue/rotational"); err == nil {
				if strings.TrimSpace(string(rot)) == "1" {
					desc += ", kernel reports rotational (usual for virtio disks)"
				} else {
					desc += ", non-rotational"
				}
			}
		}
	}
	return desc
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// probeFsync times n 4 KiB writes each followed by fdatasync in dir: the
// floor under every durable write on this disk.
func probeFsync(dir string, n int) (latencyStats, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return latencyStats{}, fmt.Errorf("creating fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for i := range n {
		st := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			return latencyStats{}, fmt.Errorf("writing fsync probe: %w", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return latencyStats{}, fmt.Errorf("fdatasync: %w", err)
		}
		ds = append(ds, time.Since(st))
	}
	return summarize(ds), nil
}

// cpuSample is the machine's busy CPU time and this process tree's CPU
// time (itself plus waited-for children: servers, the benchmark tool).
type cpuSample struct {
	at      time.Time
	busy    time.Duration
	ours    time.Duration
	workers int
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), workers: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		s.busy = parseProcStatBusy(string(b))
	}
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	s.ours = tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
	return s
}

// parseProcStatBusy sums user, nice, system, irq, softirq and steal of the
// "cpu" line (USER_HZ ticks, 100 per second on Linux).
func parseProcStatBusy(stat string) time.Duration {
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var ticks int64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
		return time.Duration(ticks) * 10 * time.Millisecond
	}
	return 0
}

// foreignShare is the share of the machine's CPU capacity between a and b
// used by processes outside this run.
func foreignShare(a, b cpuSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	foreign := (b.busy - a.busy) - (b.ours - a.ours)
	return max(0, float64(foreign)/(float64(wall)*float64(a.workers)))
}

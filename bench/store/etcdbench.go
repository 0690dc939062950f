package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BenchSummary is one report of etcd's benchmark tool (pkg/report): the
// "Summary:" block, the latency distribution and the error distribution.
type BenchSummary struct {
	TotalSecs   float64            `json:"total_secs"`
	SlowestSecs float64            `json:"slowest_secs"`
	FastestSecs float64            `json:"fastest_secs"`
	AverageSecs float64            `json:"average_secs"`
	RPS         float64            `json:"rps"`
	Percentiles map[string]float64 `json:"percentiles"` // "50" → seconds
	Errors      map[string]int     `json:"errors,omitempty"`
}

// ErrorCount is the number of failed requests.
func (s BenchSummary) ErrorCount() int {
	n := 0
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// P returns the percentile pct (e.g. "99") in milliseconds. The tool
// omits percentiles that are exactly 0 (e.g. watch events that arrived
// before the put returned): a missing one below a present one is 0.
func (s BenchSummary) P(pct string) (float64, bool) {
	if v, ok := s.Percentiles[pct]; ok {
		return v * 1000, true
	}
	want, err := strconv.ParseFloat(pct, 64)
	if err != nil {
		return 0, false
	}
	for k := range s.Percentiles {
		if have, err := strconv.ParseFloat(k, 64); err == nil && have > want {
			return 0, true
		}
	}
	return 0, false
}

var (
	pctLine = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)%\s+in\s+([0-9.eE+-]+)\s*secs?\.?\s*$`)
	errLine = regexp.MustCompile(`^\s*\[([0-9]+)\]\s+(.*\S)\s*$`)
)

var errNoSummary = errors.New("no summary in benchmark output")

// parseBenchReport parses one report. Progress-bar carriage returns, blank
// lines, histogram bars and unknown lines are ignored; both the default
// "%4.4f" and the --precise "%g" number formats are accepted. It returns
// errNoSummary (with the errors it did find) when no request succeeded.
func parseBenchReport(text string) (BenchSummary, error) {
	s := BenchSummary{Percentiles: map[string]float64{}}
	text = strings.ReplaceAll(text, "\r", "\n")
	section := ""
	haveRPS := false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		switch trimmed {
		case "Summary:", "Response time histogram:", "Latency distribution:", "Error distribution:":
			section = strings.TrimSuffix(trimmed, ":")
			continue
		}
		switch section {
		case "Summary":
			key, val, ok := strings.Cut(trimmed, ":")
			if !ok {
				continue
			}
			f, err := parseSecs(val)
			if err != nil {
				continue
			}
			switch strings.TrimSpace(key) {
			case "Total":
				s.TotalSecs = f
			case "Slowest":
				s.SlowestSecs = f
			case "Fastest":
				s.FastestSecs = f
			case "Average":
				s.AverageSecs = f
			case "Requests/sec":
				s.RPS = f
				haveRPS = true
			}
		case "Latency distribution":
			if m := pctLine.FindStringSubmatch(line); m != nil {
				f, err := strconv.ParseFloat(m[2], 64)
				if err == nil {
					s.Percentiles[m[1]] = f
				}
			}
		case "Error distribution":
			if m := errLine.FindStringSubmatch(line); m != nil {
				n, err := strconv.Atoi(m[1])
				if err == nil {
					if s.Errors == nil {
						s.Errors = map[string]int{}
					}
					s.Errors[m[2]] += n
				}
			}
		}
	}
	if !haveRPS {
		return s, errNoSummary
	}
	return s, nil
}

// parseSecs reads "0.0012 secs." or "812.3456" (Requests/sec).
func parseSecs(v string) (float64, error) {
	v = strings.TrimSpace(v)
	v = strings.TrimSuffix(v, ".")
	v = strings.TrimSpace(strings.TrimSuffix(v, "secs"))
	v = strings.TrimSuffix(v, ".")
	return strconv.ParseFloat(v, 64)
}

// parseWatchLatency splits watch-latency output into its put and its
// watch-event reports.
func parseWatchLatency(text string) (put, watch BenchSummary, err error) {
	text = strings.ReplaceAll(text, "\r", "\n")
	before, after, ok := strings.Cut(text, "Watch events summary:")
	if !ok {
		return put, watch, errors.New("no \"Watch events summary\" in watch-latency output")
	}
	if i := strings.Index(before, "Put summary:"); i >= 0 {
		before = before[i+len("Put summary:"):]
	}
	put, perr := parseBenchReport(before)
	watch, werr := parseBenchReport(after)
	if werr != nil {
		return put, watch, fmt.Errorf("watch events: %w", werr)
	}
	if perr != nil {
		return put, watch, fmt.Errorf("puts: %w", perr)
	}
	return put, watch, nil
}

// runBenchmarkTool runs bin/benchmark with args and returns its standard
// output (the reports); both streams are kept under the log directory.
func (b *bencher) runBenchmarkTool(ctx context.Context, logName string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(b.cfg.BinDir, "benchmark"), args...)
	cmd.Env = append(os.Environ(), "GRPC_GO_LOG_SEVERITY_LEVEL=error", "GRPC_GO_LOG_VERBOSITY_LEVEL=0")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	logPath := filepath.Join(b.logDir, logName+".log")
	_ = os.WriteFile(logPath, []byte("benchmark "+strings.Join(args, " ")+"\n\n--- stdout\n"+stdout.String()+"\n--- stderr\n"+stderr.String()), 0o644)
	slog.Debug("benchmark tool finished", "run", logName, "took", time.Since(start).Round(time.Millisecond), "log", logPath)
	if err != nil {
		return stdout.String(), fmt.Errorf("running benchmark: %w: %s (log %s)", err, lastBytes(stderr.String(), 200), logPath)
	}
	return stdout.String(), nil
}

// percentileOf returns the p-th percentile (0-100) of sorted values, by the
// nearest-rank method.
func percentileOf(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// latencyStats summarises durations in milliseconds.
type latencyStats struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func summarize(ds []time.Duration) latencyStats {
	if len(ds) == 0 {
		return latencyStats{}
	}
	ms := make([]float64, len(ds))
	sum := 0.0
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	sort.Float64s(ms)
	return latencyStats{N: len(ms), P50: percentileOf(ms, 50), P99: percentileOf(ms, 99), Max: ms[len(ms)-1], Mean: sum / float64(len(ms))}
}

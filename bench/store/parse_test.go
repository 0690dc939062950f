package main

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// Output of etcd v3.6.14's tools/benchmark, as captured on this machine.
const putPrecise = `
Summary:
  Total:	0.09213969 secs.
  Slowest:	0.001842305 secs.
  Fastest:	0.000262924 secs.
  Average:	0.00045833749499999977 secs.
  Stddev:	0.00018793655712077392 secs.
  Requests/sec:	2170.6172443167543

Response time histogram:
  0.000262924 [1]	|
  0.0004208621 [120]	|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  0.001842305 [2]	|

Latency distribution:
  10% in 0.000301207 secs.
  25% in 0.000345213 secs.
  50% in 0.000418001 secs.
  75% in 0.000512309 secs.
  90% in 0.000634567 secs.
  95% in 0.000733211 secs.
  99% in 0.001512345 secs.
  99.9% in 0.001842305 secs.

`

// The default precision ("%4.4f"), with the progress bar's carriage
// returns in front and an error distribution behind.
const putDefault = "\r 0 / 2000 [------] 0.00%\r 2000 / 2000 [======] 100.00% 1s\n" + `
Summary:
  Total:	1.5988 secs.
  Slowest:	1.0341 secs.
  Fastest:	0.0009 secs.
  Average:	0.0756 secs.
  Stddev:	0.2488 secs.
  Requests/sec:	1250.9311

Response time histogram:
  0.0009 [1921]	|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  1.0341 [79]	|∎

Latency distribution:
  10% in 0.0021 secs.
  25% in 0.0031 secs.
  50% in 0.0049 secs.
  75% in 0.0071 secs.
  90% in 0.0102 secs.
  95% in 0.0150 secs.
  99% in 1.0341 secs.
  99.9% in 1.0341 secs.

Error distribution:
  [3]	rpc error: code = Unavailable desc = error reading from server: EOF
  [2]	context deadline exceeded
`

const allFailed = `bench with serializable range

Error distribution:
  [2000]	rpc error: code = Unimplemented desc = serializable is not implemented by kine
`

const watchLatency = `
Put summary:

Summary:
  Total:	0.116495112 secs.
  Slowest:	0.014609675 secs.
  Fastest:	0.000487171 secs.
  Average:	0.0011623843100000003 secs.
  Stddev:	0.001431890693506224 secs.
  Requests/sec:	858.4051148858504

Response time histogram:
  0.000487171 [1]	|
  0.014609675 [1]	|

Latency distribution:
  10% in 0.000664207 secs.
  50% in 0.000895013 secs.
  99% in 0.014609675 secs.

Watch events summary:

Summary:
  Total:	0.11773306 secs.
  Slowest:	0.003463438 secs.
  Fastest:	0 secs.
  Average:	0.00011379448959999965 secs.
  Stddev:	0.00024027399931074127 secs.
  Requests/sec:	84937.90953874808

Response time histogram:
  0 [4245]	|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎
  0.003463438 [2]	|

Latency distribution:
  75% in 0.000141001 secs.
  90% in 0.000265028 secs.
  99% in 1.235404e-03 secs.
  99.9% in 0.002276977 secs.
`

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestParseBenchReport(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantErr   error
		rps       float64
		total     float64
		p50, p99  float64 // ms
		errCount  int
		errSubstr string
	}{
		{name: "precise", in: putPrecise, rps: 2170.6172443167543, total: 0.09213969, p50: 0.418001, p99: 1.512345},
		{name: "default precision with progress bar and errors", in: putDefault, rps: 1250.9311, total: 1.5988, p50: 4.9, p99: 1034.1, errCount: 5, errSubstr: "Unavailable"},
		{name: "CRLF line ends", in: strings.ReplaceAll(putPrecise, "\n", "\r\n"), rps: 2170.6172443167543, total: 0.09213969, p50: 0.418001, p99: 1.512345},
		{name: "every request failed", in: allFailed, wantErr: errNoSummary, errCount: 2000, errSubstr: "not implemented by kine"},
		{name: "empty", in: "", wantErr: errNoSummary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchReport(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if got.ErrorCount() != tt.errCount {
				t.Errorf("ErrorCount = %d, want %d (%v)", got.ErrorCount(), tt.errCount, got.Errors)
			}
			if tt.errSubstr != "" {
				found := false
				for k := range got.Errors {
					found = found || strings.Contains(k, tt.errSubstr)
				}
				if !found {
					t.Errorf("errors %v lack %q", got.Errors, tt.errSubstr)
				}
			}
			if tt.wantErr != nil {
				return
			}
			if !near(got.RPS, tt.rps) {
				t.Errorf("RPS = %v, want %v", got.RPS, tt.rps)
			}
			if !near(got.TotalSecs, tt.total) {
				t.Errorf("Total = %v, want %v", got.TotalSecs, tt.total)
			}
			if p, ok := got.P("50"); !ok || !near(p, tt.p50) {
				t.Errorf("p50 = %v ms (%v), want %v", p, ok, tt.p50)
			}
			if p, ok := got.P("99"); !ok || !near(p, tt.p99) {
				t.Errorf("p99 = %v ms (%v), want %v", p, ok, tt.p99)
			}
		})
	}
}

func TestParseWatchLatency(t *testing.T) {
	put, watch, err := parseWatchLatency(watchLatency)
	if err != nil {
		t.Fatal(err)
	}
	if !near(put.RPS, 858.4051148858504) || !near(watch.RPS, 84937.90953874808) {
		t.Errorf("RPS put %v watch %v", put.RPS, watch.RPS)
	}
	if p, ok := put.P("99"); !ok || !near(p, 14.609675) {
		t.Errorf("put p99 = %v (%v)", p, ok)
	}
	if p, ok := watch.P("99"); !ok || !near(p, 1.235404) {
		t.Errorf("watch p99 = %v (%v)", p, ok)
	}
	// The tool leaves out percentiles that are 0.
	if p, ok := watch.P("50"); !ok || p != 0 {
		t.Errorf("watch p50 = %v (%v), want 0 (omitted by the tool)", p, ok)
	}
	if _, ok := watch.P("99.99"); ok {
		t.Error("p99.99 above every reported percentile should be unknown")
	}
	if _, _, err := parseWatchLatency(putPrecise); err == nil {
		t.Error("a put report parsed as watch-latency output")
	}
}

func TestParseProcStatus(t *testing.T) {
	in := "Name:\tetcd\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   81920 kB\nRssFile:\t   20480 kB\nThreads:\t12\n"
	got := parseProcStatus([]byte(in))
	for k, want := range map[string]int64{"VmRSS": 102400, "VmHWM": 204800, "RssAnon": 81920, "RssFile": 20480} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	if _, ok := got["Threads"]; ok {
		t.Error("Threads has no kB unit and should be skipped")
	}
}

func TestParseProcStatBusy(t *testing.T) {
	in := "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\n"
	// user+nice+system+irq+softirq+steal = 100+5+50+3+2+1 ticks of 10 ms
	if got, want := parseProcStatBusy(in), 161*10*time.Millisecond; got != want {
		t.Errorf("busy = %v, want %v", got, want)
	}
}

func TestPercentileOf(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 99: 10, 100: 10, 10: 1, 0: 1} {
		if got := percentileOf(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	err := redact(errors.New(`connect postgres://bench:s3cret@127.0.0.1:5432/db failed; mysql://root:pw@tcp(127.0.0.1:3306)/x`))
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "pw@") {
		t.Errorf("credentials left in %q", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:5432/db") {
		t.Errorf("host lost in %q", err)
	}
}

func TestWriteDocKeepsIntro(t *testing.T) {
	path := t.TempDir() + "/benchmarks.md"
	if err := writeDoc(path, "first\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(path, "second\n"); err != nil {
		t.Fatal(err)
	}
	b := readFile(t, path)
	if !strings.Contains(b, "# Benchmarks") || strings.Contains(b, "first") || !strings.HasSuffix(b, "second\n") || strings.Count(b, generatedMarker) != 1 {
		t.Errorf("unexpected document:\n%s", b)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend"
	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	ids, err := listSegments(dir)
	if err != nil || len(ids) == 0 {
		t.Fatalf("segments: %v %v", ids, err)
	}
	return filepath.Join(dir, fmt.Sprintf("%016x.wal", ids[len(ids)-1]))
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// writeLog writes n one-key revisions, then one more, and returns the size
// of the last segment before and after that last commit.
func writeLog(t *testing.T, dir string, n int, opts Options) (before, after int64) {
	t.Helper()
	e := openTest(t, dir, opts)
	for i := range n {
		backendtest.Write(t, e, backendtest.Put(fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)))
	}
	before = fileSize(t, lastSegment(t, dir))
	backendtest.Write(t, e, backendtest.Put("last", strings.Repeat("x", 300)))
	after = fileSize(t, lastSegment(t, dir))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return before, after
}

func TestTornTail(t *testing.T) {
	const n = 20
	tests := []struct {
		name     string
		damage   func(t *testing.T, path string, before, after int64)
		wantLast bool // the last commit survives
	}{
		{"truncated mid frame", func(t *testing.T, p string, before, after int64) {
			truncate(t, p, before+(after-before)/2)
		}, false},
		{"truncated mid header", func(t *testing.T, p string, before, after int64) {
			truncate(t, p, before+3)
		}, false},
		{"garbled last frame", func(t *testing.T, p string, before, after int64) {
			flip(t, p, after-10)
		}, false},
		{"zero-filled tail", func(t *testing.T, p string, before, after int64) {
			appendBytes(t, p, make([]byte, 4096))
		}, true},
		{"partial header appended", func(t *testing.T, p string, before, after int64) {
			appendBytes(t, p, []byte{0xff, 0x10, 0, 0, 1, 2, 3, 4, 5})
		}, true},
		{"frame appended without its end", func(t *testing.T, p string, before, after int64) {
			frame := make([]byte, frameHeaderLen+100)
			sealFrame(frame)
			appendBytes(t, p, frame[:frameHeaderLen+40])
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			before, after := writeLog(t, dir, n, Options{NoSync: true})
			path := lastSegment(t, dir)
			tt.damage(t, path, before, after)
			e := openTest(t, dir, Options{NoSync: true})
			defer e.Close()
			want := int64(n) + 1 // the empty store is revision 1
			if tt.wantLast {
				want++
			}
			if got := backendtest.CurrentRev(t, e); got != want {
				t.Fatalf("recovered revision %d, want %d", got, want)
			}
			for i := range n {
				res, err := backendtest.Range(t, e, backend.RangeOptions{Key: []byte(fmt.Sprintf("k%03d", i))})
				if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != fmt.Sprintf("v%d", i) {
					t.Fatalf("k%03d after recovery: %+v %v", i, res.KVs, err)
				}
			}
			// The log is writable again and the torn bytes are gone.
			rev := backendtest.Write(t, e, backendtest.Put("next", "x"))
			if rev != want+1 {
				t.Fatalf("next write at %d, want %d", rev, want+1)
			}
			e.Close()
			e2 := openTest(t, dir, Options{NoSync: true})
			defer e2.Close()
			if got := backendtest.CurrentRev(t, e2); got != want+1 {
				t.Fatalf("after second reopen: revision %d, want %d", got, want+1)
			}
		})
	}
}

// TestCorruptionIsAnError damages the log a full replay reads (no
// checkpoint: with one, only the log after it is read at start).
func TestCorruptionIsAnError(t *testing.T) {
	t.Run("middle of last segment", func(t *testing.T) {
		dir := t.TempDir()
		before, _ := writeLog(t, dir, 20, Options{NoSync: true, CheckpointBytes: -1})
		flip(t, lastSegment(t, dir), before/2)
		_, err := Open(dir, Options{NoSync: true, CheckpointBytes: -1})
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("earlier segment", func(t *testing.T) {
		dir := t.TempDir()
		writeLog(t, dir, 60, Options{NoSync: true, CheckpointBytes: -1, SegmentSize: 256})
		ids, _ := listSegments(dir)
		if len(ids) < 3 {
			t.Fatalf("only %d segments", len(ids))
		}
		p := filepath.Join(dir, fmt.Sprintf("%016x.wal", ids[0]))
		truncate(t, p, fileSize(t, p)-5)
		_, err := Open(dir, Options{NoSync: true, CheckpointBytes: -1})
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("garbled length of the last frame", func(t *testing.T) {
		dir := t.TempDir()
		before, _ := writeLog(t, dir, 5, Options{NoSync: true, CheckpointBytes: -1})
		flip(t, lastSegment(t, dir), before+1)
		_, err := Open(dir, Options{NoSync: true, CheckpointBytes: -1})
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("garbled length in the middle", func(t *testing.T) {
		dir := t.TempDir()
		writeLog(t, dir, 5, Options{NoSync: true, CheckpointBytes: -1})
		flip(t, lastSegment(t, dir), int64(segmentHeaderLen)+1)
		_, err := Open(dir, Options{NoSync: true, CheckpointBytes: -1})
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("bad magic", func(t *testing.T) {
		dir := t.TempDir()
		writeLog(t, dir, 2, Options{NoSync: true, CheckpointBytes: -1})
		flip(t, lastSegment(t, dir), 0)
		_, err := Open(dir, Options{NoSync: true, CheckpointBytes: -1})
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, p []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(p); err != nil {
		t.Fatal(err)
	}
}

const crashDirEnv = "KEELSON_EMBEDDED_CRASH_DIR"

// TestKill9 runs a child process that writes with real fsync and reports
// every acknowledged write, kills it with SIGKILL mid-stream, and checks
// that every acknowledged write survived. It repeats on the same directory.
func TestKill9(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[string]int64{}
	for round := range 3 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, "KEELSON_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() && n < 300 {
			var key string
			var rev int64
			if _, err := fmt.Sscanf(sc.Text(), "ack %s %d", &key, &rev); err != nil {
				continue
			}
			acked[key] = rev
			n++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Acks printed after this point are not counted: they may or may
		// not have been read, and both are fine.
		_ = cmd.Wait()
		if n < 300 {
			t.Fatalf("round %d: child acknowledged only %d writes", round, n)
		}
		e := openTest(t, dir, Options{})
		for key, rev := range acked {
			res, err := backendtest.Range(t, e, backend.RangeOptions{Key: []byte(key)})
			if err != nil || len(res.KVs) != 1 || res.KVs[0].ModRevision != rev || string(res.KVs[0].Value) != "value-"+key {
				t.Fatalf("round %d: acknowledged %s@%d lost: %+v %v", round, key, rev, res.KVs, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged writes survived 3 kills", len(acked))
}

func crashChild(t *testing.T, dir string) {
	if os.Getenv(crashReclaimEnv) != "" {
		crashChildReclaim(t, dir)
		return
	}
	e, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	round := os.Getenv("KEELSON_CRASH_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%s/g%d/%d", round, g, i)
				var rev int64
				err := e.Update(t.Context(), func(tx backend.WriteTx) error {
					var err error
					rev, err = backendtest.ApplyOps(t.Context(), tx, backendtest.Put(key, "value-"+key))
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child update:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s %d\n", key, rev)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestDataDirChecks(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		dir := t.TempDir()
		e := openTest(t, dir, Options{NoSync: true})
		defer e.Close()
		_, err := Open(dir, Options{NoSync: true})
		if err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("second open: %v, want an in-use error", err)
		}
		e.Close()
		e2 := openTest(t, dir, Options{NoSync: true}) // the lock is released
		e2.Close()
	})
	t.Run("not a directory", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p, Options{})
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can write anywhere")
		}
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("empty dir name", func(t *testing.T) {
		if _, err := Open("", Options{}); err == nil {
			t.Fatal("open of an empty dir name succeeded")
		}
	})
}

const crashReclaimEnv = "KEELSON_EMBEDDED_CRASH_RECLAIM"

// TestKill9Reclaim is TestKill9 with tiny segments, keys overwritten over
// and over and a compaction every 100 writes, so that the kills land
// during reclamation (copying, marking, deleting files) as well as during
// commits. Every acknowledged write must be the key's version or older
// than it.
func TestKill9Reclaim(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		return // the child runs under TestKill9
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	type ackd struct {
		rev   int64
		value string
	}
	acked := map[string]ackd{}
	var maxRev int64
	for round := range 4 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashReclaimEnv+"=1", "KEELSON_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() && n < 1500+round*300 {
			var key, value string
			var rev int64
			if _, err := fmt.Sscanf(sc.Text(), "ack %s %d %s", &key, &rev, &value); err != nil {
				continue
			}
			if rev > acked[key].rev {
				acked[key] = ackd{rev, value}
			}
			maxRev = max(maxRev, rev)
			n++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if n < 1500 {
			t.Fatalf("round %d: child acknowledged only %d writes", round, n)
		}
		if segs := segCount(t, dir); segs > 40 {
			t.Errorf("round %d: %d segments: reclamation is not keeping up", round, segs)
		}
		e := openTest(t, dir, Options{Logger: quiet})
		if rev := backendtest.CurrentRev(t, e); rev < maxRev {
			t.Fatalf("round %d: reopened at revision %d, acknowledged %d", round, rev, maxRev)
		}
		for key, a := range acked {
			res, err := backendtest.Range(t, e, backend.RangeOptions{Key: []byte(key)})
			if err != nil || len(res.KVs) != 1 || res.KVs[0].ModRevision < a.rev ||
				res.KVs[0].ModRevision == a.rev && string(res.KVs[0].Value) != a.value {
				t.Fatalf("round %d: acknowledged %s@%d=%s lost: %+v %v", round, key, a.rev, a.value, res.KVs, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d keys, revision %d, %d segments left", len(acked), maxRev, segCount(t, dir))
}

// crashChildReclaim writes 40 keys over and over from 8 goroutines,
// compacting to the head every 100 writes, and prints each acknowledged
// write as "ack key rev value".
func crashChildReclaim(t *testing.T, dir string) {
	e, err := Open(dir, Options{SegmentSize: 8 << 10, Logger: quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	round := os.Getenv("KEELSON_CRASH_ROUND")
	var mu sync.Mutex
	var writes int
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("g%d/k%d", g, i%5)
				value := fmt.Sprintf("r%s-%d-%s", round, i, strings.Repeat("x", i%300))
				var rev int64
				err := e.Update(t.Context(), func(tx backend.WriteTx) error {
					var err error
					rev, err = backendtest.ApplyOps(t.Context(), tx, backendtest.Put(key, value))
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child update:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s %d %s\n", key, rev, value)
				w.Flush()
				writes++
				compact := writes%100 == 0
				mu.Unlock()
				if compact {
					if err := e.Compact(t.Context(), rev); err != nil && !errors.Is(err, backend.ErrCompacted) {
						fmt.Fprintln(os.Stderr, "child compact:", err)
						os.Exit(2)
					}
				}
			}
		})
	}
	wg.Wait()
}

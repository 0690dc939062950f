package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keelson-dev/keelson/internal/store/backend/backendtest"
)

// logBuf collects an engine's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// copyDir copies the engine's files (not the lock) as they are on disk:
// what a crash of a running engine would leave.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, ent.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// reopen opens dir with opts and a captured log, and returns the state
// dump and the log.
func reopen(t *testing.T, dir string, opts Options) (string, string) {
	t.Helper()
	var lb logBuf
	opts.Logger = lb.logger()
	e := openTest(t, dir, opts)
	defer e.Close()
	return dumpState(t, e), lb.String()
}

const (
	loadedMsg   = "loaded index checkpoint"
	fallbackMsg = "not using the index checkpoint"
)

// TestCheckpointCrashRestart runs churn (with compactions and
// reclamation) under small checkpoint and segment sizes, and after each
// compaction copies the directory as a crash would leave it, without a
// final checkpoint. Each copy must reopen to the same state from its
// checkpoint plus the log after it, and from the whole log.
func TestCheckpointCrashRestart(t *testing.T) {
	opts := Options{NoSync: true, SegmentSize: 2 << 10, CheckpointBytes: 3 << 10, Logger: quiet}
	e := openTest(t, t.TempDir(), opts)
	defer e.Close()
	loaded := 0
	checks := 0
	churn(t, e, 11, 800, func() bool {
		checks++
		if checks%3 != 0 {
			return false
		}
		want := dumpState(t, e)
		dir := copyDir(t, e.dir)
		if _, err := os.Stat(filepath.Join(dir, checkpointName)); err != nil {
			return false // none written yet
		}
		got, log := reopen(t, dir, Options{NoSync: true, SegmentSize: 2 << 10})
		if got != want {
			t.Fatalf("reopened from checkpoint:\n%s\nwant:\n%s\nlog:\n%s", got, want, log)
		}
		if strings.Contains(log, loadedMsg) {
			loaded++
		}
		full, _ := reopen(t, copyDir(t, e.dir), Options{NoSync: true, CheckpointBytes: -1})
		if full != want {
			t.Fatalf("full replay:\n%s\nwant:\n%s", full, want)
		}
		return false
	})
	if loaded == 0 {
		t.Fatal("no reopen used a checkpoint")
	}
	t.Logf("%d reopens used a checkpoint", loaded)
}

// TestCheckpointStale keeps checkpoints taken during a churn with
// reclamation and, at the end, puts each back in place of the newest one:
// a checkpoint whose segment has been reclaimed must be refused (full
// replay), one still usable must be brought up to date by the log after
// it; either way the state is the same.
func TestCheckpointStale(t *testing.T) {
	opts := Options{NoSync: true, SegmentSize: 2 << 10, CheckpointBytes: 2 << 10, Logger: quiet}
	e := openTest(t, t.TempDir(), opts)
	var saved [][]byte
	churn(t, e, 5, 1200, func() bool {
		if b, err := os.ReadFile(filepath.Join(e.dir, checkpointName)); err == nil {
			if len(saved) == 0 || !bytes.Equal(saved[len(saved)-1], b) {
				saved = append(saved, b)
			}
		}
		return false
	})
	want := dumpState(t, e)
	final := copyDir(t, e.dir)
	e.Close()
	if len(saved) < 5 {
		t.Fatalf("only %d checkpoints saved", len(saved))
	}
	used, refused := 0, 0
	for i, ck := range saved {
		dir := copyDir(t, final)
		if err := os.WriteFile(filepath.Join(dir, checkpointName), ck, 0o600); err != nil {
			t.Fatal(err)
		}
		got, log := reopen(t, dir, Options{NoSync: true, CheckpointBytes: 1 << 30})
		if got != want {
			t.Fatalf("checkpoint %d: state:\n%s\nwant:\n%s\nlog:\n%s", i, got, want, log)
		}
		switch {
		case strings.Contains(log, loadedMsg):
			used++
		case strings.Contains(log, fallbackMsg):
			refused++
		default:
			t.Fatalf("checkpoint %d: neither loaded nor refused:\n%s", i, log)
		}
	}
	t.Logf("%d stale checkpoints: %d used, %d refused", len(saved), used, refused)
	// Which stale checkpoints stay usable depends on when the background
	// ones were written; TestCheckpointReferencesReclaimedSegment builds a
	// usable stale one on purpose.
	if refused == 0 {
		t.Errorf("no stale checkpoint was refused (%d used)", used)
	}
}

// TestCheckpointDamage checks that a damaged, truncated, foreign or
// newer-version checkpoint, and a crash between writing the temporary file
// and renaming it, all lead to the same state as a full replay, with a
// log line when a checkpoint is refused.
func TestCheckpointDamage(t *testing.T) {
	build := func(t *testing.T) (dir, want string) {
		dir = t.TempDir()
		e := openTest(t, dir, Options{NoSync: true, SegmentSize: 4 << 10, Logger: quiet})
		churn(t, e, 9, 300, nil)
		e.Close() // writes a checkpoint
		// More writes after the checkpoint, ended by a crash: the
		// temporary file of the next checkpoint is written, not renamed.
		e = openTest(t, dir, Options{NoSync: true, SegmentSize: 4 << 10, Logger: quiet,
			ckptHook: func(string) error { return errors.New("crash before rename") }})
		for i := range 30 {
			backendtest.Write(t, e, backendtest.Put(fmt.Sprintf("late%02d", i), "v"))
		}
		want = dumpState(t, e)
		e.Close()
		if _, err := os.Stat(filepath.Join(dir, checkpointTemp)); err != nil {
			t.Fatalf("no temporary checkpoint left: %v", err)
		}
		return dir, want
	}
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string)
		wantLog string // "" = the checkpoint is used
	}{
		{"crash before rename", func(t *testing.T, path string) {}, ""},
		{"flipped byte", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			flip(t, path, fi.Size()/2)
		}, "checksum mismatch"},
		{"flipped checksum", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			flip(t, path, fi.Size()-1)
		}, "checksum mismatch"},
		{"truncated", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			truncate(t, path, fi.Size()*2/3)
		}, fallbackMsg},
		{"empty", func(t *testing.T, path string) { truncate(t, path, 0) }, "too short"},
		{"newer version", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(checkpointMagic)] = checkpointVersion + 1
			os.WriteFile(path, b, 0o600)
		}, "checkpoint version 2"},
		{"not a checkpoint", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("not a checkpoint ", 10)), 0o600)
		}, "bad magic"},
		{"from another log", func(t *testing.T, path string) {
			other := t.TempDir()
			e := openTest(t, other, Options{NoSync: true, Logger: quiet})
			for i := range 40 {
				backendtest.Write(t, e, backendtest.Put(fmt.Sprintf("other%02d", i), "x"))
			}
			e.Close()
			b, _ := os.ReadFile(filepath.Join(other, checkpointName))
			os.WriteFile(path, b, 0o600)
		}, fallbackMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, want := build(t)
			tt.damage(t, filepath.Join(dir, checkpointName))
			got, log := reopen(t, dir, Options{NoSync: true})
			if got != want {
				t.Fatalf("state:\n%s\nwant:\n%s\nlog:\n%s", got, want, log)
			}
			if _, err := os.Stat(filepath.Join(dir, checkpointTemp)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary checkpoint still there after open: %v", err)
			}
			if tt.wantLog == "" {
				if !strings.Contains(log, loadedMsg) || strings.Contains(log, fallbackMsg) {
					t.Errorf("checkpoint not used:\n%s", log)
				}
				return
			}
			if !strings.Contains(log, fallbackMsg) || !strings.Contains(log, tt.wantLog) {
				t.Errorf("log does not say the checkpoint was refused (%q):\n%s", tt.wantLog, log)
			}
		})
	}
}

// TestCheckpointTailDamageIsAnError checks that the log after a
// checkpoint is still checksummed: damage there fails Open as it would
// without the checkpoint.
func TestCheckpointTailDamageIsAnError(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, Options{NoSync: true, Logger: quiet})
	for i := range 20 {
		backendtest.Write(t, e, backendtest.Put(fmt.Sprintf("k%02d", i), "v"))
	}
	e.Close() // checkpoint at the end of the log
	e = openTest(t, dir, Options{NoSync: true, Logger: quiet, CheckpointBytes: 1 << 30})
	before := fileSize(t, lastSegment(t, dir))
	for i := range 20 {
		backendtest.Write(t, e, backendtest.Put(fmt.Sprintf("k%02d", i), "w"))
	}
	e.opts.CheckpointBytes = -1 // crash: no checkpoint at close
	e.Close()
	after := fileSize(t, lastSegment(t, dir))
	flip(t, lastSegment(t, dir), before+(after-before)/3)
	if _, err := Open(dir, Options{NoSync: true, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("open: %v, want a corruption error", err)
	}
}

// TestCheckpointReferencesReclaimedSegment: a checkpoint whose index points
// at values in segments reclaimed after it was written (their values
// copied forward into the log after the checkpoint's position) is still
// used, and the copies replayed after it repoint those keys.
func TestCheckpointReferencesReclaimedSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 2 << 10, Logger: quiet}
	e := openTest(t, dir, opts)
	backendtest.Write(t, e, backendtest.Put("a", "kept in segment 1"))
	for i := range 100 {
		backendtest.Write(t, e, backendtest.Put("b", strings.Repeat("x", i)))
	}
	e.Close() // checkpoint at the end of the last segment
	ck, err := readCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a := ck.keys[0]; a.key != "a" || a.revs[len(a.revs)-1].seg != 1 {
		t.Fatalf("checkpoint has %q in segment %d, want a in 1", a.key, a.revs[len(a.revs)-1].seg)
	}
	opts.CheckpointBytes = 1 << 30
	e = openTest(t, dir, opts)
	if err := e.Compact(t.Context(), backendtest.CurrentRev(t, e)); err != nil {
		t.Fatal(err)
	}
	e.waitMaintenance()
	if _, err := os.Stat(e.segPath(1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 1 not reclaimed: %v", err)
	}
	if _, err := os.Stat(e.segPath(ck.pos.seg)); err != nil {
		t.Fatalf("the checkpoint's segment %d is gone: %v", ck.pos.seg, err)
	}
	want := dumpState(t, e)
	e.opts.CheckpointBytes = -1 // crash: no checkpoint at close
	e.Close()
	got, log := reopen(t, dir, Options{NoSync: true, SegmentSize: 2 << 10})
	if got != want {
		t.Fatalf("state:\n%s\nwant:\n%s\nlog:\n%s", got, want, log)
	}
	if !strings.Contains(log, loadedMsg) {
		t.Fatalf("checkpoint not used:\n%s", log)
	}
}

// TestCheckpointStats checks the checkpoint counters: log bytes since the
// last checkpoint grow with writes, drop to zero with a checkpoint, and
// count what Open replayed after the one it loaded.
func TestCheckpointStats(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, Options{NoSync: true, Logger: quiet, CheckpointBytes: 1 << 30})
	backendtest.Write(t, e, backendtest.Put("a", "1"))
	if s := e.Stats(); s.SinceCheckpoint <= 0 || s.Checkpoints != 0 {
		t.Fatalf("after a write: %d bytes since checkpoint, %d checkpoints", s.SinceCheckpoint, s.Checkpoints)
	}
	if err := e.writeCheckpoint(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.SinceCheckpoint != 0 || s.Checkpoints != 1 {
		t.Fatalf("after a checkpoint: %d bytes since, %d checkpoints", s.SinceCheckpoint, s.Checkpoints)
	}
	backendtest.Write(t, e, backendtest.Put("b", "2"))
	since := e.Stats().SinceCheckpoint
	e.opts.CheckpointBytes = -1 // crash: no checkpoint at close
	e.Close()
	e = openTest(t, dir, Options{NoSync: true, Logger: quiet})
	defer e.Close()
	if s := e.Stats(); s.SinceCheckpoint != since {
		t.Fatalf("after reopening: %d bytes to replay since the checkpoint, want %d", s.SinceCheckpoint, since)
	}
}

// TestCheckpointAfterMark: a checkpoint written after a reclamation mark
// but before the segments it frees were deleted stays usable once they
// are (its floor comes from the mark).
func TestCheckpointAfterMark(t *testing.T) {
	dir := t.TempDir()
	opts := Options{NoSync: true, SegmentSize: 2 << 10, Logger: quiet,
		hook: func(point string) error {
			if point == "sealed" {
				return errors.New("stop before deleting")
			}
			return nil
		}}
	e := openTest(t, dir, opts)
	for i := range 100 {
		backendtest.Write(t, e, backendtest.Put("b", strings.Repeat("x", i)))
	}
	if err := e.Compact(t.Context(), backendtest.CurrentRev(t, e)); err != nil {
		t.Fatal(err)
	}
	e.waitMaintenance()
	floor := e.markFloor.Load()
	if floor < 2 {
		t.Fatalf("no mark published (floor %d)", floor)
	}
	want := dumpState(t, e)
	e.Close() // checkpoint; the segments below floor are still there
	for id := uint32(1); id < floor; id++ {
		if err := os.Remove(e.segPath(id)); err != nil {
			t.Fatal(err)
		}
	}
	got, log := reopen(t, dir, Options{NoSync: true, SegmentSize: 2 << 10})
	if got != want {
		t.Fatalf("state:\n%s\nwant:\n%s\nlog:\n%s", got, want, log)
	}
	if !strings.Contains(log, loadedMsg) {
		t.Fatalf("checkpoint not used:\n%s", log)
	}
}

// Package diag helps diagnose a store that does not stop: it writes every
// goroutine's stack to a file so that a forced shutdown leaves evidence of
// what was stuck.
package diag

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"
)

var (
	mu   sync.Mutex
	last string // the path of the newest dump, reused within a second
	at   time.Time
)

// DumpGoroutines writes the stacks of all goroutines (the format of
// /debug/pprof/goroutine?debug=2) to a new file in dir (os.TempDir() if
// dir is empty) and returns its path. If the file cannot be written the
// stacks go to fallback (when not nil) and the error is returned.
// Several components giving up at once share one dump.
func DumpGoroutines(dir string, fallback io.Writer) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if last != "" && time.Since(at) < time.Second {
		return last, nil
	}
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		return "", fmt.Errorf("collecting goroutine stacks: %w", err)
	}
	if dir == "" {
		dir = os.TempDir()
	}
	name := fmt.Sprintf("keelson-goroutines-%d-%s.txt", os.Getpid(), time.Now().UTC().Format("20060102T150405.000"))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		if fallback != nil {
			_, _ = fallback.Write(buf.Bytes())
		}
		return "", fmt.Errorf("writing goroutine dump: %w", err)
	}
	last, at = path, time.Now()
	return path, nil
}

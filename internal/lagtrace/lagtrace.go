// Package lagtrace is a temporary tracer of the change feed's stages, on
// when KEELSON_LAGTRACE names a directory: each process appends
// "unixnano stage rev a b" lines to DIR/<pid>.trace every 200 ms.
package lagtrace

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type rec struct {
	t         int64
	stage     string
	rev, a, b int64
}

var (
	dir  = os.Getenv("KEELSON_LAGTRACE")
	On   = dir != ""
	mu   sync.Mutex
	buf  []rec
	once sync.Once
)

// Mark records a stage.
func Mark(stage string, rev, a, b int64) {
	if !On {
		return
	}
	t := time.Now().UnixNano()
	once.Do(func() { go flusher() })
	mu.Lock()
	buf = append(buf, rec{t, stage, rev, a, b})
	mu.Unlock()
}

func flusher() {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.trace", os.Getpid())))
	if err != nil {
		return
	}
	w := bufio.NewWriter(f)
	for {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		out := buf
		buf = nil
		mu.Unlock()
		for _, r := range out {
			fmt.Fprintf(w, "%d %s %d %d %d\n", r.t, r.stage, r.rev, r.a, r.b)
		}
		w.Flush()
	}
}

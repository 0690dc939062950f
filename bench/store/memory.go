package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MemResult is a server's memory after loading MemKeys values.
type MemResult struct {
	Keys      int     `json:"keys"`
	ValueSize int     `json:"value_size"`
	LoadSecs  float64 `json:"load_secs"`
	PutsPerS  float64 `json:"puts_per_s"`
	RSSKiB    int64   `json:"rss_kib"`      // VmRSS
	AnonKiB   int64   `json:"rss_anon_kib"` // RssAnon: heap, not file pages
	FileKiB   int64   `json:"rss_file_kib"` // RssFile: mapped files (etcd's bbolt mmap)
	HWMKiB    int64   `json:"hwm_kib"`      // VmHWM: peak RSS
	Put       latencyStats
}

// procStatus reads the KiB fields of /proc/PID/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("reading process status: %w", err)
	}
	return parseProcStatus(b), nil
}

func parseProcStatus(b []byte) map[string]int64 {
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err == nil {
			out[k] = n
		}
	}
	return out
}

// runMemory loads the keys through ep and then reads pid's memory.
func runMemory(ctx context.Context, s Sizes, ep string, pid int) (*MemResult, error) {
	conns := max(1, min(10, s.MemClients))
	clients := make([]*clientv3.Client, conns)
	for i := range clients {
		c, err := newClient(ep)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients[i] = c
	}
	raw := make([]byte, s.MemValueSize)
	_, _ = rand.Read(raw)
	value := string(raw)
	lat, elapsed, err := parallel(ctx, s.MemKeys, s.MemClients, func(worker, i int) error {
		key := fmt.Sprintf("/registry/memory/%07d", i)
		if _, err := clients[worker%conns].Put(ctx, key, value); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading %d keys: %w", s.MemKeys, err)
	}
	// Check that the server holds every key, then read its status.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	resp, err := clients[0].Get(cctx, "/registry/memory/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("counting loaded keys: %w", err)
	}
	if resp.Count != int64(s.MemKeys) {
		return nil, fmt.Errorf("server counts %d keys, loaded %d", resp.Count, s.MemKeys)
	}
	st, err := procStatus(pid)
	if err != nil {
		return nil, err
	}
	return &MemResult{
		Keys: s.MemKeys, ValueSize: s.MemValueSize,
		LoadSecs: elapsed.Seconds(), PutsPerS: float64(s.MemKeys) / elapsed.Seconds(),
		RSSKiB: st["VmRSS"], AnonKiB: st["RssAnon"], FileKiB: st["RssFile"] + st["RssShmem"], HWMKiB: st["VmHWM"],
		Put: summarize(lat),
	}, nil
}

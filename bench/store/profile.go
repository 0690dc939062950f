package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profile captures a CPU profile of the first instance while etcd's
// benchmark tool puts at 100 clients for a little longer than the profile,
// then keeps the top of `go tool pprof -top`.
func (b *bencher) profile(ctx context.Context, r *running, tr *TargetResult, putArgs func(int) []string) error {
	secs := b.cfg.ProfileSecs
	rate := 2000.0
	if tr.Put100 != nil && tr.Put100.RPS > 0 {
		rate = tr.Put100.RPS
	}
	total := int(rate * float64(secs+3))
	file := filepath.Join(b.cfg.ProfileDir, tr.Name+"-put100.pprof")

	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", r.servers[0].metrics, secs)
		pctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(pctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{fmt.Errorf("fetching profile: %w", err)}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			done <- result{fmt.Errorf("fetching profile: %s: %s", resp.Status, strings.TrimSpace(string(body)))}
			return
		}
		f, err := os.Create(file)
		if err != nil {
			done <- result{fmt.Errorf("creating profile file: %w", err)}
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- result{err}
	}()
	args := append([]string{"--endpoints", r.writeEndpoint(), "--conns", "100", "--clients", "100"}, putArgs(total)...)
	if _, err := b.runBenchmarkTool(ctx, tr.Name+"-profile-load", args...); err != nil {
		slog.Warn("profile load failed", "err", err)
	}
	res := <-done
	if res.err != nil {
		return res.err
	}
	tr.Profile = file
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", filepath.Join(b.cfg.BinDir, r.spec.Kind), file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w: %s", err, lastBytes(string(out), 300))
	}
	tr.ProfTop = string(out)
	_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+".top.txt", out, 0o644)
	slog.Info("cpu profile", "target", tr.Name, "file", file)
	return nil
}

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

// profile captures a CPU profile of the first instance while load runs
// the concurrent put scenario a little longer than the profile, then keeps
// the top of `go tool pprof -top`.
func (b *bencher) profile(ctx context.Context, r *running, tr *TargetResult, load func(total int) error) error {
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
		host := r.servers[0].metrics // keelson serves pprof on its metrics listener
		if r.spec.Kind == "etcd" {
			host = r.servers[0].endpoint // etcd --enable-pprof serves it on the client URL
		}
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", host, secs)
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
	if err := load(total); err != nil {
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

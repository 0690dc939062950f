package main

import (
	"context"
	"errors"
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
	done := b.fetchProfile(ctx, r, secs, file)
	if err := load(total); err != nil {
		slog.Warn("profile load failed", "err", err)
	}
	if err := <-done; err != nil {
		return err
	}
	tr.Profile = file
	top, err := b.profileTop(ctx, r, file)
	if err != nil {
		return err
	}
	tr.ProfTop = top
	slog.Info("cpu profile", "target", tr.Name, "file", file)
	return nil
}

// profileLists captures a CPU profile of the first instance while list
// runs full paginated lists over and over, and writes the profile, the top
// of `go tool pprof -top` and (keelson) the /metrics page taken right after
// next to the put profile.
func (b *bencher) profileLists(ctx context.Context, r *running, tr *TargetResult, list func(context.Context) error) error {
	file := filepath.Join(b.cfg.ProfileDir, tr.Name+"-lists.pprof")
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := b.fetchProfile(ctx, r, b.cfg.ProfileSecs, file)
	var perr error
	lists := 0
	for perr == nil {
		select {
		case perr = <-done:
			if perr == nil {
				perr = errDone
			}
			continue
		default:
		}
		if err := list(lctx); err != nil {
			cancel()
			if perr = <-done; perr == nil {
				perr = err
			}
			break
		}
		lists += b.cfg.Sizes.KubeListers // list runs that many lists side by side
	}
	if !errors.Is(perr, errDone) {
		return perr
	}
	if _, err := b.profileTop(ctx, r, file); err != nil {
		return err
	}
	if r.spec.Kind == "keelson" {
		if m, err := httpGet(ctx, "http://"+r.servers[0].metrics+"/metrics"); err == nil {
			_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+".metrics.txt", m, 0o644)
		}
	}
	slog.Info("cpu profile under lists", "target", tr.Name, "file", file, "lists", lists)
	return nil
}

var errDone = errors.New("done")

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// fetchProfile fetches a CPU profile of secs seconds of the first instance
// into file; the channel receives the outcome.
func (b *bencher) fetchProfile(ctx context.Context, r *running, secs int, file string) <-chan error {
	done := make(chan error, 1)
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
			done <- fmt.Errorf("fetching profile: %w", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			done <- fmt.Errorf("fetching profile: %s: %s", resp.Status, strings.TrimSpace(string(body)))
			return
		}
		f, err := os.Create(file)
		if err != nil {
			done <- fmt.Errorf("creating profile file: %w", err)
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return done
}

// profileTop runs `go tool pprof -top` on file and keeps it next to it.
func (b *bencher) profileTop(ctx context.Context, r *running, file string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", filepath.Join(b.cfg.BinDir, r.spec.Kind), file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, lastBytes(string(out), 300))
	}
	_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+".top.txt", out, 0o644)
	return string(out), nil
}

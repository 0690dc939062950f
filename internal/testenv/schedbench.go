package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Pid is the scheduler process's id (CPU and memory accounting).
func (s *KeelsonScheduler) Pid() int { return s.proc.cmd.Process.Pid }

// Pid is the kube-apiserver process's id (CPU accounting in benchmarks).
func (a *APIServer) Pid() int { return a.proc.cmd.Process.Pid }

// Pid is the store process's id, 0 when it is not running.
func (s *Store) Pid() int {
	if s.proc == nil || s.proc.cmd == nil || s.proc.cmd.Process == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// KubeScheduler is a kube-scheduler started on demand with
// StartKubeScheduler (benchmarks compare it with keelson scheduler on one
// environment).
type KubeScheduler struct {
	proc *process
}

// Pid is the process id.
func (s *KubeScheduler) Pid() int { return s.proc.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the exit.
func (s *KubeScheduler) Stop() error { return s.proc.stop(stopTimeout) }

// StartKubeScheduler starts kube-scheduler against the first apiserver
// with a KubeSchedulerConfiguration setting its client QPS and burst
// (leader election off, every other field defaulted) and waits for its
// /healthz. Use it with Options.Scheduler unset.
func (e *Env) StartKubeScheduler(ctx context.Context, qps float32, burst int) (*KubeScheduler, error) {
	return e.StartKubeSchedulerWith(ctx, qps, burst, "")
}

// StartKubeSchedulerWith is StartKubeScheduler with extra top-level
// KubeSchedulerConfiguration YAML appended (e.g. a profiles: list that sets
// NodeResourcesFit's scoring strategy).
func (e *Env) StartKubeSchedulerWith(ctx context.Context, qps float32, burst int, extra string) (*KubeScheduler, error) {
	p, err := e.startController(ctx, BinKubeScheduler, userScheduler, func(kubeconfig, certDir string, port int) []string {
		cfg := filepath.Join(e.Dir, "kube-scheduler-config.yaml")
		body := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %s
  qps: %s
  burst: %d
leaderElection:
  leaderElect: false
%s`, strconv.Quote(kubeconfig), strconv.FormatFloat(float64(qps), 'f', -1, 32), burst, extra)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			e.log.Error("writing kube-scheduler config", "err", err)
		}
		return append([]string{
			"--config=" + cfg,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir,
			"--profiling=false",
		}, e.opts.SchedulerArgs...)
	})
	if err != nil {
		return nil, err
	}
	e.addProc(p)
	return &KubeScheduler{proc: p}, nil
}

package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// componentReadyTimeout bounds the start of the controller manager,
// scheduler and kwok.
const componentReadyTimeout = 2 * time.Minute

// startController starts kube-controller-manager or kube-scheduler against
// the first apiserver on a free secure port and polls its /healthz.
func (e *Env) startController(ctx context.Context, binName, user string, args func(kubeconfig, certDir string, port int) []string) (*process, error) {
	bin, err := LookBinary(e.binDir, binName)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(e.Dir, binName+".kubeconfig")
	if err := writeKubeconfig(kubeconfig, binName, e.APIServers[0].URL, e.pki.caPEM, e.pki.tokens[user]); err != nil {
		return nil, err
	}
	certDir := filepath.Join(e.Dir, binName)
	logPath := filepath.Join(e.LogDir, binName+".log")
	var proc *process
	err = startRetrying(e.log, binName, func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		started := time.Now()
		p, err := startProcess(binName, bin, args(kubeconfig, certDir, ports[0]), logPath, e.onExit)
		if err != nil {
			return err
		}
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/healthz"
		rctx, cancel := context.WithTimeout(ctx, componentReadyTimeout)
		defer cancel()
		if err := p.waitFor(rctx, binName+" /healthz", 200*time.Millisecond, func(ctx context.Context) error {
			return healthz(ctx, url)
		}); err != nil {
			p.kill()
			if p.addrInUse() {
				return fmt.Errorf("%s: %w: %w", binName, errAddrInUse, err)
			}
			return fmt.Errorf("%s: %w", binName, err)
		}
		e.log.Info(binName+" ready", "pid", p.cmd.Process.Pid, "took", time.Since(started).Round(time.Millisecond), "log", logPath)
		proc = p
		return nil
	})
	return proc, err
}

func (e *Env) startControllerManager(ctx context.Context) (*process, error) {
	controllers := "*"
	if len(e.opts.Controllers) > 0 {
		controllers = strings.Join(e.opts.Controllers, ",")
	}
	return e.startController(ctx, BinKubeControllerManager, userControllerManager, func(kubeconfig, certDir string, port int) []string {
		return append([]string{
			"--kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir,
			// The defaults: deployment, replicaset, garbage collector,
			// namespace, serviceaccount and token, node lifecycle, ...
			"--controllers=" + controllers,
			"--service-account-private-key-file=" + e.pki.saKey,
			"--root-ca-file=" + e.pki.caCert,
			"--cluster-signing-cert-file=" + e.pki.caCert,
			"--cluster-signing-key-file=" + e.pki.caKey,
			"--use-service-account-credentials=false",
			"--leader-elect=false",
			"--profiling=false",
		}, e.opts.ControllerManagerArgs...)
	})
}

func (e *Env) startScheduler(ctx context.Context) (*process, error) {
	return e.startController(ctx, BinKubeScheduler, userScheduler, func(kubeconfig, certDir string, port int) []string {
		return append([]string{
			"--kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir,
			"--leader-elect=false",
			"--profiling=false",
		}, e.opts.SchedulerArgs...)
	})
}

// healthz GETs a component's own /healthz over its self-signed serving
// certificate on loopback.
func healthz(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // our own child on loopback, self-signed
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, lastLines(string(body), 5))
	}
	return nil
}

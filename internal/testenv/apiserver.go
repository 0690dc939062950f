package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// apiserverReadyTimeout bounds a kube-apiserver start on a busy machine.
const apiserverReadyTimeout = 3 * time.Minute

// APIServer is a running kube-apiserver.
type APIServer struct {
	// Index is the position in Env.APIServers.
	Index int
	// URL is https://127.0.0.1:PORT.
	URL string
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file for this server.
	Kubeconfig string
	// LogPath is the file the server's output goes to.
	LogPath string

	proc *process
}

// apiserverArgs is the kube-apiserver command line; storeEndpoints is a
// comma-separated list of store URLs.
func apiserverArgs(p *pki, storeEndpoints string, port int, certDir string, extra []string) []string {
	args := []string{
		"--etcd-servers=" + storeEndpoints,
		"--storage-backend=etcd3",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + p.serverCert,
		"--tls-private-key-file=" + p.serverKey,
		"--client-ca-file=" + p.caCert,
		"--token-auth-file=" + p.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		// The "kubernetes" Service would get 127.0.0.1 endpoints, which
		// validation rejects; nothing here runs in a pod that needs them.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}
	return append(args, extra...)
}

// startAPIServer starts kube-apiserver number idx on a free port and waits
// for /readyz.
func (e *Env) startAPIServer(ctx context.Context, idx int) (*APIServer, error) {
	bin, err := LookBinary(e.binDir, BinKubeAPIServer)
	if err != nil {
		return nil, err
	}
	name := "kube-apiserver"
	if e.opts.APIServers > 1 {
		name += "-" + strconv.Itoa(idx)
	}
	extra := append([]string(nil), e.opts.APIServerArgs...)
	if !e.opts.ControllerManager && e.opts.KwokNodes > 0 {
		// Without the node lifecycle controller nothing would remove the
		// not-ready taint this plugin puts on new nodes.
		extra = append(extra, "--disable-admission-plugins=TaintNodesByCondition")
	}
	a := &APIServer{Index: idx, LogPath: filepath.Join(e.LogDir, name+".log")}
	err = startRetrying(e.log, name, func() error {
		ports, err := freePorts(1)
		if err != nil {
			return err
		}
		a.URL = "https://127.0.0.1:" + strconv.Itoa(ports[0])
		certDir := filepath.Join(e.Dir, name)
		started := time.Now()
		p, err := startProcess(name, bin, apiserverArgs(e.pki, e.etcdServers(idx), ports[0], certDir, extra), a.LogPath, e.onExit)
		if err != nil {
			return err
		}
		a.proc = p
		a.Config = restConfig(a.URL, e.pki.caPEM, e.pki.tokens[UserAdmin])
		rctx, cancel := context.WithTimeout(ctx, apiserverReadyTimeout)
		defer cancel()
		if err := a.waitReady(rctx); err != nil {
			p.kill()
			if p.addrInUse() {
				return fmt.Errorf("%s: %w: %w", name, errAddrInUse, err)
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		e.log.Info("kube-apiserver ready", "name", name, "url", a.URL, "pid", p.cmd.Process.Pid,
			"took", time.Since(started).Round(time.Millisecond), "log", a.LogPath)
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if idx > 0 {
		a.Kubeconfig = filepath.Join(e.Dir, "kubeconfig-"+strconv.Itoa(idx))
	}
	if err := writeKubeconfig(a.Kubeconfig, "keelson", a.URL, e.pki.caPEM, e.pki.tokens[UserAdmin]); err != nil {
		return nil, err
	}
	return a, nil
}

// Ready checks /readyz once; it returns nil on 200.
func (a *APIServer) Ready(ctx context.Context) error {
	return getOK(ctx, a.Config, "/readyz")
}

// WaitReady polls /readyz until it returns 200 or ctx ends.
func (a *APIServer) WaitReady(ctx context.Context) error {
	return a.waitReady(ctx)
}

func (a *APIServer) waitReady(ctx context.Context) error {
	return a.proc.waitFor(ctx, "kube-apiserver /readyz", 200*time.Millisecond, a.Ready)
}

// getOK sends GET path with cfg's credentials and wants 200.
func getOK(ctx context.Context, cfg *rest.Config, path string) error {
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return fmt.Errorf("building transport: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, lastLines(string(body), 5))
	}
	return nil
}

// lastLines returns the last n non-empty lines of s, joined with "; ".
func lastLines(s string, n int) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "[+]") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "; ")
}

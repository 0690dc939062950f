package federation

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keelson-dev/keelson/internal/federation/controller"
)

// readyzProxy serves a member's API through a TLS reverse proxy that can
// make /readyz fail while every other request (reads, writes) goes
// through: a member that is writable but not ready, which neither a
// stopped store (not writable) nor a paused apiserver (not reachable)
// gives.
type readyzProxy struct {
	srv     *httptest.Server
	unready atomic.Bool
}

func newReadyzProxy(t *testing.T, member *rest.Config) *readyzProxy {
	t.Helper()
	target, err := url.Parse(member.Host)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(member)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr // the member's admin client certificate
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Authorization") // the control plane's placeholder token
	}
	p := &readyzProxy{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && p.unready.Load() {
			http.Error(w, "[-]proxy: made unready by the test\nreadyz check failed", http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// kubeconfig is a kubeconfig for the proxy (it authenticates to the
// member itself; the token only satisfies join's inline-credentials rule).
func (p *readyzProxy) kubeconfig(t *testing.T) []byte {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{Server: p.srv.URL, CertificateAuthorityData: ca}
	cfg.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{Token: "unused"}
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy"}
	cfg.CurrentContext = "proxy"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const unreadyYAML = `apiVersion: v1
kind: Namespace
metadata: {name: fou}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mover, namespace: fou}
spec:
  replicas: 2
  selector: {matchLabels: {app: mover}}
  template:
    metadata: {labels: {app: mover}}
    spec: {containers: [{name: app, image: nginx:1}]}
---
apiVersion: federation.keelson.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: mover, namespace: fou}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: mover}]
  placement:
    clusterAffinity: {clusterNames: [m1p, m2]}
    clusterTolerations: [{key: test.keelson.dev/proxy, operator: Exists}]
    replicaScheduling: {type: Divided}
  failover: {tolerationSeconds: 0}
`

// testFailoverUnreadyWritable: a member that fails /readyz but still takes
// writes (m1 seen through a proxy, joined as m1p) loses its replicas to
// the healthy member, and its copy — which could be deleted at once —
// stays until the replacements run ready: new ones up before old ones go.
// m1p carries a taint that only this test's policy tolerates, so the
// other policies never select it.
func (f *fleet) testFailoverUnreadyWritable(t *testing.T) {
	ctx := t.Context()
	m1, m2 := f.member("m1"), f.member("m2")
	p := newReadyzProxy(t, m1.env.Config)
	if err := controller.Join(ctx, f.host.env.Config, controller.JoinOptions{Name: "m1p", Kubeconfig: p.kubeconfig(t), Region: "eu",
		Taints: []corev1.Taint{{Key: "test.keelson.dev/proxy", Effect: corev1.TaintEffectNoSchedule}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = controller.Unjoin(context.Background(), f.host.env.Config, "m1p") })
	f.waitCluster(t, "m1p", true, true)
	f.apply(t, unreadyYAML)
	// m1p's copy lives in m1's apiserver.
	f.waitReplicas(t, deploymentsGVR, "fou", "mover", map[string]int64{"m1": 1, "m2": 1}, true)

	p.unready.Store(true)
	f.waitCluster(t, "m1p", true, false)
	// Until m1p's copy is gone, every look finds either the copy still in
	// m1 or both replacement replicas ready in m2 (m1 is read first: had
	// the copy been deleted before the replacements ran, the read of m2
	// that follows would find fewer than 2 ready).
	waitWithin(t, longWait, "m1p's copy to go once m2 runs both replicas", func(ctx context.Context) (bool, error) {
		old, err := get(ctx, m1, deploymentsGVR, "fou", "mover")
		if err != nil {
			return false, err
		}
		if old != nil {
			return false, fmt.Errorf("m1p still holds its copy")
		}
		cur, err := get(ctx, m2, deploymentsGVR, "fou", "mover")
		if err != nil {
			return false, err
		}
		ready := int64(0)
		if cur != nil {
			ready, _, _ = unstructured.NestedInt64(cur.Object, "status", "readyReplicas")
		}
		if cur == nil || replicasOf(cur) != 2 || ready != 2 {
			t.Fatalf("m1p's copy was deleted while m2 ran %d of 2 replicas ready: the old copy must wait for the new ones", ready)
		}
		return true, nil
	})
}

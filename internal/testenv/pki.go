package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Users in the static token file. All are in system:masters: this is a test
// and laptop environment, not a hardened cluster.
const (
	UserAdmin             = "keelson-admin"
	userControllerManager = "keelson-kube-controller-manager"
	userScheduler         = "keelson-kube-scheduler"
	userKwok              = "keelson-kwok"
)

// serviceCIDR is the service cluster IP range; kubernetesServiceIP is the
// first address in it, used by the "kubernetes" Service.
const (
	serviceCIDR         = "10.96.0.0/16"
	kubernetesServiceIP = "10.96.0.1"
)

// pki holds the files kube-apiserver and the controllers need: a CA, the
// apiserver's serving certificate, the service-account signing key and the
// static token file.
type pki struct {
	dir        string
	caCert     string // CA certificate (PEM)
	caKey      string
	serverCert string
	serverKey  string
	saKey      string // service-account signing key (private, PEM)
	saPub      string // its public key
	tokenFile  string // static token file for --token-auth-file
	caPEM      []byte
	tokens     map[string]string // user -> bearer token
}

// ensurePKI loads the files in dir, creating them if the CA is missing. A
// directory kept between runs (keelson up) keeps its kubeconfig valid.
func ensurePKI(dir string) (*pki, error) {
	p := &pki{
		dir:        dir,
		caCert:     filepath.Join(dir, "ca.crt"),
		caKey:      filepath.Join(dir, "ca.key"),
		serverCert: filepath.Join(dir, "apiserver.crt"),
		serverKey:  filepath.Join(dir, "apiserver.key"),
		saKey:      filepath.Join(dir, "sa.key"),
		saPub:      filepath.Join(dir, "sa.pub"),
		tokenFile:  filepath.Join(dir, "tokens.csv"),
	}
	if _, err := os.Stat(p.tokenFile); errors.Is(err, os.ErrNotExist) {
		if err := p.generate(); err != nil {
			return nil, fmt.Errorf("generating certificates in %s: %w", dir, err)
		}
	}
	if err := p.load(); err != nil {
		return nil, fmt.Errorf("loading certificates from %s (delete the directory to regenerate): %w", dir, err)
	}
	return p, nil
}

func (p *pki) generate() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "keelson-testenv-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP(kubernetesServiceIP)},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating serving certificate: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}

	files := []struct {
		path  string
		block func() (*pem.Block, error)
	}{
		{p.caCert, func() (*pem.Block, error) { return &pem.Block{Type: "CERTIFICATE", Bytes: caDER}, nil }},
		{p.caKey, func() (*pem.Block, error) { return ecKeyBlock(caKey) }},
		{p.serverCert, func() (*pem.Block, error) { return &pem.Block{Type: "CERTIFICATE", Bytes: srvDER}, nil }},
		{p.serverKey, func() (*pem.Block, error) { return ecKeyBlock(srvKey) }},
		{p.saKey, func() (*pem.Block, error) {
			return &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}, nil
		}},
		{p.saPub, func() (*pem.Block, error) {
			der, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
			return &pem.Block{Type: "PUBLIC KEY", Bytes: der}, err
		}},
	}
	for _, f := range files {
		b, err := f.block()
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.path, pem.EncodeToMemory(b), 0o600); err != nil {
			return err
		}
	}

	// Static tokens: token,user,uid,"group1,group2". Written last: its
	// presence marks a complete directory.
	tf, err := os.OpenFile(p.tokenFile+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := csv.NewWriter(tf)
	for _, user := range []string{UserAdmin, userControllerManager, userScheduler, userKwok} {
		if err := w.Write([]string{randToken(), user, user, "system:masters"}); err != nil {
			tf.Close()
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		tf.Close()
		return err
	}
	if err := tf.Close(); err != nil {
		return err
	}
	return os.Rename(p.tokenFile+".tmp", p.tokenFile)
}

func (p *pki) load() error {
	var err error
	if p.caPEM, err = os.ReadFile(p.caCert); err != nil {
		return err
	}
	f, err := os.Open(p.tokenFile)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("reading token file: %w", err)
	}
	p.tokens = make(map[string]string, len(recs))
	for _, rec := range recs {
		if len(rec) >= 2 {
			p.tokens[rec[1]] = rec[0]
		}
	}
	for _, u := range []string{UserAdmin, userControllerManager, userScheduler, userKwok} {
		if p.tokens[u] == "" {
			return fmt.Errorf("token file has no token for %s", u)
		}
	}
	return nil
}

func ecKeyBlock(k *ecdsa.PrivateKey) (*pem.Block, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}, nil
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return n
}

func randToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error
	return hex.EncodeToString(b)
}

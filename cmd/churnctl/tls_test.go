package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/churnhq/churn/internal/config"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, PEM, into a temporary
// directory: the certificate doubles as its own CA.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "churnd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// churnd with --tls-cert-file speaks only TLS: churnctl reaches it with --tls-ca-file and fails
// without; a token to a non-loopback address over plaintext is warned about.
func TestAdminCallsOverTLS(t *testing.T) {
	cert, key := selfSigned(t)
	addr := startChurnd(t, func(c *config.Config) { c.TLSCertFile, c.TLSKeyFile = cert, key })
	c := cli{t: t, addr: addr, env: map[string]string{"CHURN_TOKEN": adminToken}}
	c.run("models", "list", "--tls-ca-file", cert).want(t, 0, []string{"ACTIVE"}, nil)
	if r := c.run("models", "list", "--timeout", "2s"); r.code != 1 {
		t.Errorf("plaintext to a TLS churnd: exit %d, want 1\n%s", r.code, r.stderr)
	}
	var warn connFlags
	warn.addr = "10.1.2.3:50051"
	var stderr bytes.Buffer
	warn.plaintextTokenWarning("tok", &stderr)
	if stderr.String() == "" {
		t.Error("no warning for a token sent in clear text to 10.1.2.3")
	}
	warn.addr = "127.0.0.1:50051"
	stderr.Reset()
	warn.plaintextTokenWarning("tok", &stderr)
	if stderr.String() != "" {
		t.Errorf("a warning for loopback: %q", stderr.String())
	}
}

package upstream_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/upstream"
)

// raCert is a certificate over key as a profile's RA certificate would be
// (its validity is what the requester certificate takes).
func raCert(t *testing.T, key *rsa.PrivateKey, ku x509.KeyUsage, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test RA"}, NotBefore: notBefore, NotAfter: notAfter, KeyUsage: ku}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requester is a signer for upstream requests, as a profile's.
func requester(t *testing.T) client.Requester {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert, err := upstream.RequesterCertificate("test", key, raCert(t, key, x509.KeyUsageDigitalSignature, now.Add(-time.Hour), now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	return client.Requester{Cert: cert, Key: key}
}

// Every replica and every restart builds the same requester certificate
// from the profile's persisted RA key: a CertPoll is signed as its
// PKCSReq was.
func TestRequesterCertificateIsDeterministic(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	nb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ra := raCert(t, key, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, nb, nb.AddDate(10, 0, 0))
	a, err := upstream.RequesterCertificate("legacy", key, ra)
	if err != nil {
		t.Fatal(err)
	}
	// A second build, as another process would, from the key re-read.
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	again, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	b, err := upstream.RequesterCertificate("legacy", again.(*rsa.PrivateKey), ra)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Raw, b.Raw) {
		t.Fatal("two builds from the same key differ")
	}
	if got := a.Subject.String(); got != "CN=legacy upstream requester,O=scepd" {
		t.Errorf("subject %q", got)
	}
	if !a.NotBefore.Equal(ra.NotBefore) || !a.NotAfter.Equal(ra.NotAfter) {
		t.Errorf("validity %v..%v, want the RA certificate's %v..%v", a.NotBefore, a.NotAfter, ra.NotBefore, ra.NotAfter)
	}
	if err := a.CheckSignature(a.SignatureAlgorithm, a.RawTBSCertificate, a.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if a.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v", a.SerialNumber)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	c, err := upstream.RequesterCertificate("legacy", other, raCert(t, other, x509.KeyUsageDigitalSignature, nb, nb.AddDate(10, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if c.SerialNumber.Cmp(a.SerialNumber) == 0 {
		t.Error("two keys, one serial")
	}
}

func writeFile(t *testing.T, dir, name string, mode os.FileMode, block *pem.Block) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadCredential(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := writeFile(t, dir, "ra.key", 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	cert := func(name string, ku x509.KeyUsage, nb, na time.Time) string {
		return writeFile(t, dir, name, 0o644, &pem.Block{Type: "CERTIFICATE", Bytes: raCert(t, key, ku, nb, na).Raw})
	}
	good := cert("good.pem", x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment, now.Add(-time.Hour), now.Add(time.Hour))
	who, err := upstream.LoadCredential(good, keyFile, keys.Source{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if who.Cert.Subject.CommonName != "test RA" || who.Key == nil {
		t.Fatalf("loaded %v", who.Cert.Subject)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(other)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"readable key", good, writeFile(t, dir, "open.key", 0o644, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), "readable by others"},
		{"another key", good, writeFile(t, dir, "other.key", 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}), "other.key is not the key of the certificate"},
		{"EC key", good, writeFile(t, dir, "ec.key", 0o600, &pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "must be RSA"},
		{"expired", cert("old.pem", x509.KeyUsageDigitalSignature, now.Add(-2*time.Hour), now.Add(-time.Hour)), keyFile, "old.pem: the RA certificate is not valid now: CN=test RA expired on"},
		{"not yet valid", cert("new.pem", x509.KeyUsageDigitalSignature, now.Add(time.Hour), now.Add(2*time.Hour)), keyFile, "new.pem: the RA certificate is not valid now: CN=test RA is not valid before"},
		{"no digitalSignature", cert("enc.pem", x509.KeyUsageKeyEncipherment, now.Add(-time.Hour), now.Add(time.Hour)), keyFile, "enc.pem: CN=test RA has no digitalSignature"},
		{"missing cert", filepath.Join(dir, "none.pem"), keyFile, "none.pem"},
		{"encrypted key without passphrase", good, writeFile(t, dir, "enc.key", 0o600, encrypted(t, keyDER)), "enc.key"},
	} {
		_, err := upstream.LoadCredential(tc.cert, tc.key, keys.Source{}, now)
		if tc.name == "encrypted key without passphrase" {
			// With scepd's key passphrase it loads.
			if _, perr := upstream.LoadCredential(tc.cert, tc.key, keys.Source{Passphrase: []byte("correct horse")}, now); perr != nil {
				t.Errorf("encrypted key with the passphrase: %v", perr)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// encrypted is keyDER as scepd writes keys under a passphrase.
func encrypted(t *testing.T, keyDER []byte) *pem.Block {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ks := keys.Source{Dir: dir, Passphrase: []byte("correct horse")}
	ref, err := ks.SaveFile("k.key", k.(*rsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := ks.Path(ref)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	return block
}

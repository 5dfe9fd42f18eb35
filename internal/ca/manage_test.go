package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestIntermediateImportAndPKCS12(t *testing.T) {
	now := time.Now()
	rootKey, _ := GenerateKey(ECDSAP384)
	rootName, err := ParseName("CN=Corp Root CA,O=Corp\\, Inc.,C=DE")
	if err != nil {
		t.Fatal(err)
	}
	if rootName.Organization[0] != "Corp, Inc." || rootName.Country[0] != "DE" {
		t.Fatalf("ParseName: %+v", rootName)
	}
	root, err := NewRoot(rootKey, rootName, 20*365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	intKey, _ := GenerateKey(RSA2048)
	inter, err := root.NewIntermediate(intKey, mustName(t, "CN=Corp Devices CA"), 30*365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !inter.Cert.IsCA || !inter.Cert.MaxPathLenZero || inter.Cert.NotAfter.After(root.Cert.NotAfter) || len(inter.Chain) != 1 {
		t.Fatalf("intermediate: CA %v pathlen0 %v chain %d", inter.Cert.IsCA, inter.Cert.MaxPathLenZero, len(inter.Chain))
	}
	// A device certificate from the intermediate chains to the root.
	p := DefaultPolicy()
	devKey, _ := GenerateKey(ECDSAP256)
	csr := testCSR(t, devKey, &x509.CertificateRequest{Subject: mustName(t, "CN=dev")})
	tmpl, err := p.Evaluate(csr, inter.Cert, "x", now)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := inter.Sign(tmpl, csr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root.Cert)
	inters.AddCert(inter.Cert)
	if _, err := dev.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate does not chain: %v", err)
	}

	// Import: the chain as PEM, with the right key and with a wrong one.
	var bundle []byte
	for _, c := range []*x509.Certificate{inter.Cert, root.Cert} {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	chain, err := ParseCertificatesPEM(bundle)
	if err != nil || len(chain) != 2 {
		t.Fatalf("ParseCertificatesPEM: %v", err)
	}
	if _, err := Import(chain, intKey); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if _, err := Import(chain, rootKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("Import with the wrong key: %v", err)
	}
	if _, err := Import([]*x509.Certificate{dev}, devKey); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("Import of a leaf: %v", err)
	}
	if _, err := Import([]*x509.Certificate{inter.Cert, inter.Cert}, intKey); err == nil {
		t.Fatal("Import of a broken chain succeeded")
	}

	// PKCS#12 round trip, bag order shuffled.
	p12, err := EncodePKCS12(intKey, inter.Cert, []*x509.Certificate{root.Cert}, "p12 pass")
	if err != nil {
		t.Fatal(err)
	}
	key, chain2, err := ParsePKCS12(p12, "p12 pass")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Import(chain2, key); err != nil || len(chain2) != 2 {
		t.Fatalf("Import from PKCS#12: %v (%d certificates)", err, len(chain2))
	}
	if _, _, err := ParsePKCS12(p12, "wrong"); err == nil {
		t.Fatal("PKCS#12 with a wrong password decoded")
	}
	for _, bad := range []string{"", "CN", "XX=y", "CN="} {
		if _, err := ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) succeeded", bad)
		}
	}
}

func mustName(t *testing.T, s string) pkix.Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

package ca

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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

// TestImportRequiresCAUsages: an imported CA certificate must say
// basicConstraints CA:TRUE, and a keyUsage extension, when it has one,
// must hold keyCertSign and cRLSign (relying parties reject certificates
// and CRLs signed under a key without them); one without the extension
// is imported.
func TestImportRequiresCAUsages(t *testing.T) {
	key, _ := GenerateKey(ECDSAP256)
	now := time.Now()
	both := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	for _, tc := range []struct {
		name string
		ku   x509.KeyUsage
		isCA bool
		want string // "" imports
	}{
		{"keyCertSign and cRLSign", both, true, ""},
		{"no keyUsage extension", 0, true, ""},
		{"no cRLSign", x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, true, "key usage lacks cRLSign: relying parties would reject the CRLs"},
		{"no keyCertSign", x509.KeyUsageCRLSign, true, "key usage lacks keyCertSign: relying parties would reject the certificates"},
		{"neither", x509.KeyUsageDigitalSignature, true, "lacks keyCertSign and cRLSign"},
		{"no basicConstraints", both, false, "lacks basicConstraints CA:TRUE"},
	} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: tc.name}, NotBefore: now, NotAfter: now.Add(time.Hour),
			KeyUsage: tc.ku, IsCA: tc.isCA, BasicConstraintsValid: tc.isCA}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		imported, err := Import([]*x509.Certificate{cert}, key)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Import: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil {
			continue
		}
		// A relying party (here crypto/x509) takes the CRLs it signs.
		crlDER, err := imported.CRL([]Revoked{{Serial: big.NewInt(7), At: now}}, 1, now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(crlDER)
		if err != nil || crl.CheckSignatureFrom(cert) != nil {
			t.Errorf("%s: the CRL it signs: %v, does not verify", tc.name, err)
		}
	}
	// A CA certificate with basicConstraints CA:FALSE present is no CA either.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "CA:FALSE"}, NotBefore: now, NotAfter: now.Add(time.Hour),
		KeyUsage: both, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)
	if _, err := Import([]*x509.Certificate{cert}, key); err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("CA:FALSE: Import: %v, want not a CA certificate", err)
	}
}

package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// TestCRL: the directly encoded CRL parses with crypto/x509, verifies
// against the CA, carries every entry with its time and reason, the number
// and the authority key identifier, matches what crypto/x509 encodes for
// the same fields byte for byte (before the signature), and passes zlint's
// RFC 5280 CRL lints.
func TestCRL(t *testing.T) {
	registry, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lint.SourceList{lint.RFC5280, lint.Community}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{"p521": p521, "ed25519": ed}
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048} {
		k, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		keys[string(kt)] = k
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			root, err := NewRoot(key, pkix.Name{CommonName: "CRL Root", Organization: []string{"scepd"}}, 10*365*24*time.Hour, now.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var revoked []Revoked
			for i := range 300 {
				serial := new(big.Int).Lsh(big.NewInt(int64(i+1)), uint(i%127))
				revoked = append(revoked, Revoked{Serial: serial, At: now.Add(-time.Duration(i) * time.Minute), Reason: []int{0, 1, 4, 5}[i%4]})
			}
			revoked = append(revoked, Revoked{Serial: big.NewInt(7), At: time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC), Reason: 9})
			for _, entries := range [][]Revoked{nil, revoked} {
				der, err := root.CRL(entries, 42, now, now.Add(24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatal(err)
				}
				if err := crl.CheckSignatureFrom(root.Cert); err != nil {
					t.Fatalf("signature: %v", err)
				}
				if crl.Number.Int64() != 42 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(24*time.Hour)) ||
					!bytes.Equal(crl.AuthorityKeyId, root.Cert.SubjectKeyId) || !bytes.Equal(crl.RawIssuer, root.Cert.RawSubject) {
					t.Fatalf("CRL fields: number %v, %v..%v, AKI %x", crl.Number, crl.ThisUpdate, crl.NextUpdate, crl.AuthorityKeyId)
				}
				if len(crl.RevokedCertificateEntries) != len(entries) {
					t.Fatalf("%d entries, want %d", len(crl.RevokedCertificateEntries), len(entries))
				}
				for i, e := range crl.RevokedCertificateEntries {
					want := entries[i]
					if e.SerialNumber.Cmp(want.Serial) != 0 || !e.RevocationTime.Equal(want.At.Truncate(time.Second)) || e.ReasonCode != want.Reason {
						t.Fatalf("entry %d: %v %v %d, want %v %v %d", i, e.SerialNumber, e.RevocationTime, e.ReasonCode, want.Serial, want.At, want.Reason)
					}
				}
				// crypto/x509's encoding of the same fields, signature aside.
				viaX509, err := root.crlWithX509(entries, 42, now, now.Add(24*time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				ref, _ := x509.ParseRevocationList(viaX509)
				if !bytes.Equal(crl.RawTBSRevocationList, ref.RawTBSRevocationList) {
					t.Fatalf("the TBSCertList differs from crypto/x509's:\n%x\n%x", crl.RawTBSRevocationList, ref.RawTBSRevocationList)
				}
				zcrl, err := zx509.ParseRevocationList(der)
				if err != nil {
					t.Fatal(err)
				}
				for lintName, r := range zlint.LintRevocationListEx(zcrl, registry).Results {
					if r.Status == lint.Error || r.Status == lint.Fatal {
						t.Errorf("%s: %s %s", lintName, r.Status, r.Details)
					}
				}
			}
		})
	}
}

func BenchmarkCRLEncode(b *testing.B) {
	key, _ := GenerateKey(ECDSAP256)
	now := time.Now()
	root, _ := NewRoot(key, pkix.Name{CommonName: "CRL Root"}, 24*time.Hour, now)
	revoked := make([]Revoked, 100_000)
	for i := range revoked {
		s := make([]byte, 16)
		rand.Read(s)
		revoked[i] = Revoked{Serial: new(big.Int).SetBytes(s), At: now, Reason: i % 6}
	}
	for _, impl := range []struct {
		name string
		f    func([]Revoked, int64, time.Time, time.Time) ([]byte, error)
	}{{"direct", root.CRL}, {"crypto-x509", root.crlWithX509}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := impl.f(revoked, 1, now, now.Add(time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"
)

func testCert(t testing.TB, key crypto.Signer, cn string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var rsaKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

func TestEnvelopeRoundTrip(t *testing.T) {
	cert := FromX509(testCert(t, rsaKey, "recipient"))
	other := FromX509(testCert(t, rsaKey, "other"))
	for _, c := range []Cipher{DES, TripleDES, AES128, AES192, AES256} {
		for _, size := range []int{0, 1, 15, 16, 17, 1000} {
			pt := bytes.Repeat([]byte{byte(size)}, size)
			env, err := Encrypt(pt, cert, c, nil)
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			e, err := ParseEnvelopedData(env)
			if err != nil {
				t.Fatalf("%v: parse: %v", c, err)
			}
			if e.Cipher != c || len(e.Recipients) != 1 {
				t.Fatalf("%v: parsed cipher %v, %d recipients", c, e.Cipher, len(e.Recipients))
			}
			got, err := e.Decrypt(rsaKey, cert)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%v/%d: decrypt = %v", c, size, err)
			}
			if _, err := e.Decrypt(rsaKey, other); !errors.Is(err, ErrNoRecipient) {
				t.Fatalf("%v: decrypt for another certificate: %v, want ErrNoRecipient", c, err)
			}
		}
	}
}

func TestDecryptWrongKeyIsOpaque(t *testing.T) {
	cert := FromX509(testCert(t, rsaKey, "recipient"))
	env, err := Encrypt([]byte("secret"), cert, AES128, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ParseEnvelopedData(env)
	wrong, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := e.Decrypt(wrong, cert); !errors.Is(err, ErrDecrypt) || err.Error() != ErrDecrypt.Error() {
		t.Fatalf("wrong key: %v, want exactly ErrDecrypt", err)
	}
	// A tampered ciphertext fails the same way.
	e.EncryptedContent[len(e.EncryptedContent)-1] ^= 1
	if _, err := e.Decrypt(rsaKey, cert); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: %v, want ErrDecrypt", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, key := range []crypto.Signer{rsaKey, ecKey} {
		cert := FromX509(testCert(t, key, "signer"))
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, content := range [][]byte{nil, {}, []byte("payload")} {
				attr := Attribute{Type: asn1.ObjectIdentifier{1, 2, 3}, Values: [][]byte{{0x13, 0x01, 'x'}}}
				der, err := Signer{Cert: cert, Key: key, Hash: h, Certificates: [][]byte{cert.Raw}}.Sign(content, []Attribute{attr}, nil)
				if err != nil {
					t.Fatal(err)
				}
				sd, err := ParseSignedData(der)
				if err != nil {
					t.Fatal(err)
				}
				if (content == nil) != (sd.Content == nil) || !bytes.Equal(sd.Content, content) {
					t.Fatalf("content %q came back as %q", content, sd.Content)
				}
				signer, si, err := sd.Verify()
				if err != nil {
					t.Fatalf("%T %v: %v", key, h, err)
				}
				if !bytes.Equal(signer.Raw, cert.Raw) {
					t.Fatal("wrong signer")
				}
				if got, _ := si.Hash(); got != h {
					t.Fatalf("hash %v, want %v", got, h)
				}
				if v, ok := si.Attr(attr.Type); !ok || !bytes.Equal(v, attr.Values[0]) {
					t.Fatal("attribute lost")
				}
				// Without the certificate in the message, the signer must be supplied.
				der, _ = Signer{Cert: cert, Key: key, Hash: h}.Sign(content, nil, nil)
				sd, _ = ParseSignedData(der)
				if _, _, err := sd.Verify(); !errors.Is(err, ErrNoSigner) {
					t.Fatalf("no certificate: %v, want ErrNoSigner", err)
				}
				if _, _, err := sd.Verify(cert); err != nil {
					t.Fatalf("with the certificate supplied: %v", err)
				}
			}
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cert := FromX509(testCert(t, rsaKey, "signer"))
	der, _ := Signer{Cert: cert, Key: rsaKey, Hash: crypto.SHA256, Certificates: [][]byte{cert.Raw}}.Sign([]byte("payload"), nil, nil)
	i := bytes.Index(der, []byte("payload"))
	bad := bytes.Clone(der)
	bad[i] = 'P'
	sd, err := ParseSignedData(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sd.Verify(); !errors.Is(err, ErrVerification) {
		t.Fatalf("tampered content: %v, want ErrVerification", err)
	}
}

func TestNormalizeBER(t *testing.T) {
	tests := []struct {
		name    string
		in, out []byte
	}{
		{"definite passes through", []byte{0x30, 0x03, 0x02, 0x01, 0x05}, []byte{0x30, 0x03, 0x02, 0x01, 0x05}},
		{"indefinite sequence", []byte{0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00}, []byte{0x30, 0x03, 0x02, 0x01, 0x05}},
		{"nested indefinite", []byte{0x30, 0x80, 0xa0, 0x80, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00}, []byte{0x30, 0x04, 0xa0, 0x02, 0x05, 0x00}},
		{"chunked octet string", []byte{0x24, 0x80, 0x04, 0x02, 'a', 'b', 0x04, 0x01, 'c', 0x00, 0x00}, []byte{0x04, 0x03, 'a', 'b', 'c'}},
		{"non-minimal length", []byte{0x04, 0x81, 0x02, 'h', 'i'}, []byte{0x04, 0x02, 'h', 'i'}},
		{"unsorted set kept in order", []byte{0x31, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01}, []byte{0x31, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01}},
	}
	for _, tt := range tests {
		got, err := normalize(tt.in)
		if err != nil || !bytes.Equal(got, tt.out) {
			t.Errorf("%s: normalize(% x) = % x, %v; want % x", tt.name, tt.in, got, err, tt.out)
		}
	}
	for _, bad := range [][]byte{
		{}, {0x30}, {0x30, 0x05, 0x02}, {0x30, 0x80, 0x02, 0x01, 0x05}, {0x02, 0x80, 0x00, 0x00},
		{0x30, 0x85, 0, 0, 0, 0, 1}, {0x04, 0x01, 'a', 'b'}, {0x24, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00},
		append(bytes.Repeat([]byte{0x30, 0x80}, 100), bytes.Repeat([]byte{0, 0}, 100)...),
	} {
		if _, err := normalize(bad); !errors.Is(err, ErrBER) {
			t.Errorf("normalize(% x) = %v, want ErrBER", bad, err)
		}
	}
}

// TestNormalizeDERNoCopy: input already in normal form is returned as it
// is (no copy), capped so appending to the result cannot write into it;
// a nested non-minimal length deep inside still gets the rewrite.
func TestNormalizeDERNoCopy(t *testing.T) {
	in := []byte{0x30, 0x08, 0x31, 0x06, 0x02, 0x01, 0x09, 0x04, 0x01, 'x', 0xff}[:10]
	got, err := normalize(in)
	if err != nil || &got[0] != &in[0] || cap(got) != len(in) {
		t.Errorf("normalize(DER) = % x (cap %d), %v; want the input itself, capped", got, cap(got), err)
	}
	deep := []byte{0x30, 0x06, 0x31, 0x04, 0x04, 0x81, 0x01, 'x'}
	got, err = normalize(deep)
	if want := []byte{0x30, 0x05, 0x31, 0x03, 0x04, 0x01, 'x'}; err != nil || !bytes.Equal(got, want) {
		t.Errorf("normalize(% x) = % x, %v; want % x", deep, got, err, want)
	}
}

func TestDegenerate(t *testing.T) {
	a, b := testCert(t, rsaKey, "a"), testCert(t, rsaKey, "b")
	der, err := Degenerate([][]byte{a.Raw, b.Raw})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseSignedData(der)
	if err != nil || len(sd.Certificates) != 2 || !bytes.Equal(sd.Certificates[1].Raw, b.Raw) || len(sd.Signers) != 0 {
		t.Fatalf("round trip: %v", err)
	}
}

func BenchmarkEnvelope(b *testing.B) {
	cert := FromX509(testCert(b, rsaKey, "r"))
	pt := make([]byte, 1200)
	for b.Loop() {
		env, _ := Encrypt(pt, cert, AES256, nil)
		e, _ := ParseEnvelopedData(env)
		if _, err := e.Decrypt(rsaKey, cert); err != nil {
			b.Fatal(err)
		}
	}
}

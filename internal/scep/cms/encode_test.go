package cms

import (
	"bytes"
	"encoding/asn1"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signedDataBuilder is the cryptobyte encoding of a SignedData that
// encodeSignedData replaced: the reference its bytes must match.
func signedDataBuilder(digestOID asn1.ObjectIdentifier, content []byte, certs [][]byte, id signerID, set []byte, sigOID asn1.ObjectIdentifier, sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(digestOID)
						b.AddASN1NULL()
					})
				})
				addEncapContent(b, content)
				addCertificates(b, certs)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						id.add(b)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(digestOID)
							b.AddASN1NULL()
						})
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddBytes(set)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(sigOID)
							if sigOID.Equal(oidRSAEncryption) {
								b.AddASN1NULL()
							}
						})
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// TestEncodeSignedDataAsCryptobyte: the one-pass SignedData encoder
// writes what cryptobyte wrote, byte for byte, across content, certificate,
// attribute and signature sizes that take each length form, into a buffer
// of exactly its size (the sizes summed before writing are right).
func TestEncodeSignedDataAsCryptobyte(t *testing.T) {
	fill := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	cert := func(n int) []byte { return appendTLV(nil, []byte{0x30}, fill(n, 0x11)) }
	ids := []signerID{
		{issuer: appendTLV(nil, []byte{0x30}, fill(60, 0x22)), serial: []byte{0x02, 0x01, 0x05}},
		{issuer: appendTLV(nil, []byte{0x30}, fill(300, 0x22)), serial: appendTLV(nil, []byte{0x02}, fill(20, 0x33))},
		{ski: fill(20, 0x44)},
	}
	n := 0
	for _, digest := range []asn1.ObjectIdentifier{oidSHA1, oidSHA256, oidSHA512} {
		for _, sigOID := range []asn1.ObjectIdentifier{oidRSAEncryption, oidECDSAWithSHA256} {
			for _, content := range [][]byte{nil, {}, fill(100, 1), fill(200, 2), fill(70000, 3)} {
				for _, certs := range [][][]byte{nil, {cert(10)}, {cert(700), cert(1500)}} {
					for _, id := range ids {
						for _, set := range [][]byte{fill(50, 5), fill(400, 6)} {
							for _, sig := range [][]byte{fill(64, 7), fill(256, 8), fill(512, 9)} {
								want, err := signedDataBuilder(digest, content, certs, id, set, sigOID, sig)
								if err != nil {
									t.Fatal(err)
								}
								got := encodeSignedData(digest, content, certs, id, set, sigOID, sig)
								if !bytes.Equal(got, want) {
									t.Fatalf("digest %v, signature %v, content %d, certificates %d, sid %d, attributes %d, signature %d: differs from cryptobyte's encoding",
										digest, sigOID, len(content), len(certs), len(id.issuer)+len(id.ski), len(set), len(sig))
								}
								if cap(got) != len(got) {
									t.Fatalf("digest %v, signature %v, content %d, certificates %d, sid %d, attributes %d, signature %d: %d bytes in a buffer of %d, not of their exact size",
										digest, sigOID, len(content), len(certs), len(id.issuer)+len(id.ski), len(set), len(sig), len(got), cap(got))
								}
								n++
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d encodings compared", n)
}

// TestAppendOIDAsCryptobyte: appendOID writes every OID of this package
// as cryptobyte does.
func TestAppendOIDAsCryptobyte(t *testing.T) {
	for _, oid := range []asn1.ObjectIdentifier{OIDData, OIDSignedData, OIDEnvelopedData, OIDAttrContentType, OIDAttrMessageDigest, OIDAttrSigningTime,
		oidMD5, oidSHA1, oidSHA224, oidSHA256, oidSHA384, oidSHA512, oidRSAEncryption, oidRSAESOAEP, oidSHA256WithRSA,
		oidECPublicKey, oidECDSAWithSHA1, oidECDSAWithSHA256, oidECDSAWithSHA384, oidECDSAWithSHA512, oidAES256CBC,
		{0, 0}, {2, 999, 1 << 40}, {1, 39, 127, 128, 16383, 16384}} {
		var b cryptobyte.Builder
		b.AddASN1ObjectIdentifier(oid)
		want, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if got := appendOID(nil, oid); !bytes.Equal(got, want) {
			t.Errorf("%v: %x, cryptobyte %x", oid, got, want)
		}
	}
}

// envelopedDataBuilder is the cryptobyte encoding encodeEnvelopedData
// replaced.
func envelopedDataBuilder(id signerID, ek []byte, oid asn1.ObjectIdentifier, iv, buf []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDEnvelopedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(0)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(0)
						id.add(b)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidRSAEncryption)
							b.AddASN1NULL()
						})
						b.AddASN1OctetString(ek)
					})
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(OIDData)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oid)
						b.AddASN1OctetString(iv)
					})
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(buf) })
				})
			})
		})
	})
	return b.Bytes()
}

// TestEncodeEnvelopedDataAsCryptobyte: the one-pass EnvelopedData encoder
// writes what cryptobyte wrote, byte for byte, into a buffer of exactly
// its size.
func TestEncodeEnvelopedDataAsCryptobyte(t *testing.T) {
	fill := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	ids := []signerID{
		{issuer: appendTLV(nil, []byte{0x30}, fill(60, 0x22)), serial: []byte{0x02, 0x01, 0x05}},
		{issuer: appendTLV(nil, []byte{0x30}, fill(300, 0x22)), serial: appendTLV(nil, []byte{0x02}, fill(20, 0x33))},
		{ski: fill(20, 0x44)},
	}
	for _, id := range ids {
		for _, oid := range []asn1.ObjectIdentifier{oidDESCBC, oidDESEDE3, oidAES128CBC, oidAES256CBC} {
			for _, ek := range [][]byte{fill(128, 1), fill(256, 2), fill(512, 3)} {
				for _, iv := range [][]byte{fill(8, 4), fill(16, 5)} {
					for _, ct := range [][]byte{fill(16, 6), fill(128, 7), fill(2000, 8), fill(70000, 9)} {
						want, err := envelopedDataBuilder(id, ek, oid, iv, ct)
						if err != nil {
							t.Fatal(err)
						}
						got := encodeEnvelopedData(id, ek, oid, iv, ct)
						if !bytes.Equal(got, want) {
							t.Fatalf("cipher %v, key %d, content %d, rid %d: differs from cryptobyte's encoding", oid, len(ek), len(ct), len(id.issuer)+len(id.ski))
						}
						if cap(got) != len(got) {
							t.Fatalf("cipher %v, key %d, content %d, rid %d: %d bytes in a buffer of %d, not of their exact size", oid, len(ek), len(ct), len(id.issuer)+len(id.ski), len(got), cap(got))
						}
					}
				}
			}
		}
	}
}

// degenerateBuilder is the cryptobyte encoding DegenerateWithCRLs replaced.
func degenerateBuilder(certs, crls [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {})
				addEncapContent(b, nil)
				addCertificates(b, certs)
				if len(crls) > 0 {
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range crls {
							b.AddBytes(c)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {})
			})
		})
	})
	return b.Bytes()
}

// TestDegenerateAsCryptobyte: the certs-only encoder writes what
// cryptobyte wrote, byte for byte, into a buffer of exactly its size.
func TestDegenerateAsCryptobyte(t *testing.T) {
	el := func(n int, c byte) []byte { return appendTLV(nil, []byte{0x30}, bytes.Repeat([]byte{c}, n)) }
	lists := [][][]byte{nil, {}, {el(10, 1)}, {el(100, 2), el(1500, 3)}, {el(70000, 4)}}
	for _, certs := range lists {
		for _, crls := range lists {
			want, err := degenerateBuilder(certs, crls)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DegenerateWithCRLs(certs, crls)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%d certificates, %d CRLs: differs from cryptobyte's encoding (%v)", len(certs), len(crls), err)
			}
			if cap(got) != len(got) {
				t.Fatalf("%d certificates, %d CRLs: %d bytes in a buffer of %d, not of their exact size", len(certs), len(crls), len(got), cap(got))
			}
		}
	}
}

// The cryptobyte helpers of the encoders replaced.

func addEncapContent(b *cryptobyte.Builder, content []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDData)
		if content != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(content)
			})
		}
	})
}

func (id signerID) add(b *cryptobyte.Builder) {
	if id.ski != nil {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(id.ski) })
		return
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(id.issuer)
		b.AddBytes(id.serial)
	})
}

func addCertificates(b *cryptobyte.Builder, certs [][]byte) {
	if len(certs) == 0 {
		return
	}
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		for _, c := range certs {
			b.AddBytes(c)
		}
	})
}

// BenchmarkEncode compares the one-pass encoders with the cryptobyte ones
// they replaced, at a CertRep's sizes (RSA-2048 RA, one 1.2 KB
// certificate): go test -run x -bench Encode -benchmem ./internal/scep/cms
func BenchmarkEncode(b *testing.B) {
	fill := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	cert := appendTLV(nil, []byte{0x30}, fill(1200, 1))
	id := signerID{issuer: appendTLV(nil, []byte{0x30}, fill(80, 2)), serial: appendTLV(nil, []byte{0x02}, fill(16, 3))}
	content, set, sig, ek, iv, ct := fill(1900, 4), fill(330, 5), fill(256, 6), fill(256, 7), fill(16, 8), fill(1300, 9)
	b.Run("SignedData/one-pass", func(b *testing.B) {
		for b.Loop() {
			encodeSignedData(oidSHA256, content, [][]byte{cert}, id, set, oidRSAEncryption, sig)
		}
	})
	b.Run("SignedData/cryptobyte", func(b *testing.B) {
		for b.Loop() {
			signedDataBuilder(oidSHA256, content, [][]byte{cert}, id, set, oidRSAEncryption, sig)
		}
	})
	b.Run("EnvelopedData/one-pass", func(b *testing.B) {
		for b.Loop() {
			encodeEnvelopedData(id, ek, oidAES256CBC, iv, ct)
		}
	})
	b.Run("EnvelopedData/cryptobyte", func(b *testing.B) {
		for b.Loop() {
			envelopedDataBuilder(id, ek, oidAES256CBC, iv, ct)
		}
	})
	b.Run("Degenerate/one-pass", func(b *testing.B) {
		for b.Loop() {
			DegenerateWithCRLs([][]byte{cert}, nil)
		}
	})
	b.Run("Degenerate/cryptobyte", func(b *testing.B) {
		for b.Loop() {
			degenerateBuilder([][]byte{cert}, nil)
		}
	})
}

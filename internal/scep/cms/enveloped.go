package cms

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepd/scepd/internal/der"
)

// MaxRecipients bounds the RecipientInfos of an EnvelopedData.
const MaxRecipients = 16

// ErrDecrypt is returned for every failure to decrypt content. It carries no
// detail on purpose: which step failed must not be visible to the sender
// (a PKCS#1 v1.5 padding oracle, Bleichenbacher 1998).
var ErrDecrypt = errors.New("cms: cannot decrypt the enveloped content")

// ErrNoRecipient means no RecipientInfo names the decrypting certificate.
var ErrNoRecipient = errors.New("cms: message is not encrypted to this recipient")

// Recipient is one KeyTransRecipientInfo (RFC 5652 §6.2.1).
type Recipient struct {
	rid          signerID
	KeyAlgorithm asn1.ObjectIdentifier
	EncryptedKey []byte
}

// EnvelopedData is a parsed ContentInfo carrying EnvelopedData (RFC 5652 §6).
type EnvelopedData struct {
	Recipients       []Recipient
	ContentType      asn1.ObjectIdentifier
	Cipher           Cipher
	CipherOID        asn1.ObjectIdentifier
	IV               []byte
	EncryptedContent []byte
}

// ParseEnvelopedData parses BER or DER ContentInfo wrapping EnvelopedData.
// An unknown content cipher is not an error here: Cipher is left zero and
// CipherOID says what it was, so policy can refuse it with a reason.
func ParseEnvelopedData(in []byte) (*EnvelopedData, error) {
	der, err := normalize(in)
	if err != nil {
		return nil, err
	}
	content, err := unwrapContentInfo(der, OIDEnvelopedData)
	if err != nil {
		return nil, err
	}
	s := cryptobyte.String(content)
	var ed, recips, eci cryptobyte.String
	var version int64
	if !s.ReadASN1(&ed, cbasn1.SEQUENCE) || !ed.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) ||
		!ed.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!ed.ReadASN1(&recips, cbasn1.SET) || !ed.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return nil, malformed("EnvelopedData header")
	}
	out := &EnvelopedData{}
	for !recips.Empty() {
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !recips.ReadAnyASN1(&ri, &tag) {
			return nil, malformed("RecipientInfo")
		}
		if tag != cbasn1.SEQUENCE {
			continue // kari, kekri, pwri: not used by SCEP
		}
		if len(out.Recipients) == MaxRecipients {
			return nil, malformed(fmt.Sprintf("more than %d recipients", MaxRecipients))
		}
		var r Recipient
		var alg, key cryptobyte.String
		if !ri.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) {
			return nil, malformed("KeyTransRecipientInfo version")
		}
		if r.rid, err = readSignerID(&ri); err != nil {
			return nil, err
		}
		if !ri.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&r.KeyAlgorithm) ||
			!ri.ReadASN1(&key, cbasn1.OCTET_STRING) {
			return nil, malformed("KeyTransRecipientInfo")
		}
		r.EncryptedKey = key
		out.Recipients = append(out.Recipients, r)
	}
	var alg cryptobyte.String
	if !eci.ReadASN1ObjectIdentifier(&out.ContentType) || !eci.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&out.CipherOID) {
		return nil, malformed("EncryptedContentInfo")
	}
	out.Cipher, _ = cipherFromOID(out.CipherOID)
	if !alg.Empty() {
		var iv cryptobyte.String
		if alg.PeekASN1Tag(cbasn1.OCTET_STRING) && alg.ReadASN1(&iv, cbasn1.OCTET_STRING) {
			out.IV = iv
		}
	}
	// encryptedContent [0] IMPLICIT OCTET STRING: primitive, or constructed
	// from OCTET STRING chunks when the sender streamed it.
	var tag cbasn1.Tag
	var ec cryptobyte.String
	if !eci.ReadAnyASN1(&ec, &tag) {
		return nil, malformed("encryptedContent missing")
	}
	switch tag {
	case cbasn1.Tag(0).ContextSpecific():
		out.EncryptedContent = ec
	case cbasn1.Tag(0).Constructed().ContextSpecific():
		for !ec.Empty() {
			var chunk cryptobyte.String
			if !ec.ReadASN1(&chunk, cbasn1.OCTET_STRING) {
				return nil, malformed("encryptedContent chunk")
			}
			out.EncryptedContent = append(out.EncryptedContent, chunk...)
		}
	default:
		return nil, malformed("encryptedContent tag")
	}
	return out, nil
}

// For reports whether a RecipientInfo names cert.
func (e *EnvelopedData) For(cert *Certificate) bool {
	for _, r := range e.Recipients {
		if cert.matches(r.rid) {
			return true
		}
	}
	return false
}

// Decrypt recovers the content with the recipient's key. cert selects the
// RecipientInfo that names it; a nil cert tries every key-transport
// recipient (for tools that hold a key but not its certificate).
func (e *EnvelopedData) Decrypt(key crypto.Decrypter, cert *Certificate) ([]byte, error) {
	if e.Cipher == 0 {
		return nil, fmt.Errorf("%w: content cipher %s", ErrUnsupportedAlgorithm, e.CipherOID)
	}
	var candidates []Recipient
	for _, r := range e.Recipients {
		if cert == nil || cert.matches(r.rid) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return nil, ErrNoRecipient
	}
	for _, r := range candidates {
		if pt, err := e.decryptWith(key, r); err == nil {
			return pt, nil
		}
	}
	return nil, ErrDecrypt
}

func (e *EnvelopedData) decryptWith(key crypto.Decrypter, r Recipient) ([]byte, error) {
	var cek []byte
	var err error
	switch {
	case r.KeyAlgorithm.Equal(oidRSAEncryption):
		// With SessionKeyLen set, a padding failure yields a random key and
		// no error, so the failure surfaces only at content decryption and
		// both look the same (RFC 3218 §2.3.2).
		cek, err = key.Decrypt(rand.Reader, r.EncryptedKey, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: e.Cipher.KeySize()})
	case r.KeyAlgorithm.Equal(oidRSAESOAEP):
		cek, err = key.Decrypt(rand.Reader, r.EncryptedKey, &rsa.OAEPOptions{Hash: crypto.SHA1})
	default:
		return nil, fmt.Errorf("%w: key transport %s", ErrUnsupportedAlgorithm, r.KeyAlgorithm)
	}
	if err != nil || len(cek) != e.Cipher.KeySize() {
		return nil, ErrDecrypt
	}
	block, err := newBlock(e.Cipher, cek)
	if err != nil {
		return nil, ErrDecrypt
	}
	iv := e.IV
	if iv == nil {
		iv = make([]byte, block.BlockSize()) // old Java clients omit the IV parameter; zero IV
	}
	ct := e.EncryptedContent
	if len(iv) != block.BlockSize() || len(ct) == 0 || len(ct)%block.BlockSize() != 0 {
		return nil, ErrDecrypt
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	return unpad(pt, block.BlockSize())
}

func newBlock(c Cipher, key []byte) (cipher.Block, error) {
	switch c {
	case DES:
		return des.NewCipher(key)
	case TripleDES:
		return des.NewTripleDESCipher(key)
	case AES128, AES192, AES256:
		return aes.NewCipher(key)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, c)
}

// unpad removes PKCS#7 padding (RFC 5652 §6.3) in constant time with respect
// to the padding bytes.
func unpad(b []byte, size int) ([]byte, error) {
	n := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, size)
	for i := 1; i <= size && i <= len(b); i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, n)
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(b[len(b)-i], byte(n)), 1)
	}
	if good != 1 {
		return nil, ErrDecrypt
	}
	return b[:len(b)-n], nil
}

// Encrypt builds a DER ContentInfo/EnvelopedData of plaintext for one RSA
// recipient with the given content cipher. The cipher is always a
// parameter: there is no default to race on.
func Encrypt(plaintext []byte, recipient *Certificate, c Cipher, random io.Reader) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	pub, ok := recipient.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: recipient key %T (key transport needs RSA)", ErrUnsupportedAlgorithm, recipient.PublicKey)
	}
	oid := c.oid()
	if oid == nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, c)
	}
	cek := make([]byte, c.KeySize())
	if _, err := io.ReadFull(random, cek); err != nil {
		return nil, fmt.Errorf("cms: content key: %w", err)
	}
	if c == DES || c == TripleDES {
		setDESParity(cek)
	}
	block, err := newBlock(c, cek)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, block.BlockSize())
	if _, err := io.ReadFull(random, iv); err != nil {
		return nil, fmt.Errorf("cms: IV: %w", err)
	}
	padLen := block.BlockSize() - len(plaintext)%block.BlockSize()
	buf := make([]byte, len(plaintext)+padLen)
	copy(buf, plaintext)
	for i := len(plaintext); i < len(buf); i++ {
		buf[i] = byte(padLen)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(buf, buf)
	ek, err := rsa.EncryptPKCS1v15(random, pub, cek)
	if err != nil {
		return nil, fmt.Errorf("cms: key transport: %w", err)
	}

	return encodeEnvelopedData(recipient.id(), ek, oid, iv, buf), nil
}

// encodeEnvelopedData writes the ContentInfo of an EnvelopedData with one
// key-transport recipient (RSA) and content encrypted with cipher oid
// under iv, in one pass into a buffer of its exact size.
func encodeEnvelopedData(id signerID, ek []byte, oid asn1.ObjectIdentifier, iv, ct []byte) []byte {
	var algs [64]byte
	keyAlg := appendAlgorithmID(algs[:0], oidRSAEncryption, true)
	contentAlg := appendOID(algs[len(keyAlg):len(keyAlg)], oid)
	version := []byte{0x02, 0x01, 0x00}

	recipient := len(version) + id.encodedLen() + len(keyAlg) + der.ElementLen(len(ek))
	cipherAlg := len(contentAlg) + der.ElementLen(len(iv))
	encrypted := len(oidDataTLV) + der.ElementLen(cipherAlg) + der.ElementLen(len(ct))
	envelopedData := len(version) + der.ElementLen(der.ElementLen(recipient)) + der.ElementLen(encrypted)
	b := beginContentInfo(oidEnvelopedDataTLV, envelopedData)
	b = append(b, version...)
	b = der.AppendHeader(b, 0x31, der.ElementLen(recipient))
	b = der.AppendHeader(b, 0x30, recipient)
	b = append(b, version...)
	b = id.appendTo(b)
	b = append(b, keyAlg...)
	b = der.AppendHeader(b, 0x04, len(ek))
	b = append(b, ek...)
	b = der.AppendHeader(b, 0x30, encrypted)
	b = append(b, oidDataTLV...)
	b = der.AppendHeader(b, 0x30, cipherAlg)
	b = append(b, contentAlg...)
	b = der.AppendHeader(b, 0x04, len(iv))
	b = append(b, iv...)
	b = der.AppendHeader(b, 0x80, len(ct))
	return append(b, ct...)
}

// setDESParity sets odd parity on each key byte, as DES keys expect.
func setDESParity(k []byte) {
	for i, c := range k {
		c &= 0xfe
		p := c ^ c>>4
		p ^= p >> 2
		p ^= p >> 1
		k[i] = c | (^p & 1)
	}
}

// Identifier describes the certificate a recipient names: its issuer (DER
// Name) and serial (DER INTEGER), or a subject key identifier.
func (r Recipient) Identifier() (issuer, serial, ski []byte) {
	return r.rid.issuer, r.rid.serial, r.rid.ski
}

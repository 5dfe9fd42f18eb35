package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
)

// inspectCmd prints what an operator debugging a device needs to know
// about a SCEP message (request or reply), a GetCACert answer, a
// certificate or a CSR.
func inspectCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "private key (PEM) of the recipient: decrypts the envelope (an encrypted key with env SCEPD_KEY_PASSPHRASE or SCEPD_KEY_PASSPHRASE_FILE)")
	certPath := fs.String("cert", "", "certificate (PEM/DER) of a reply's signer when the reply does not carry it")
	pos := []string{}
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "Usage: scepd inspect [--key KEY.pem] [--cert SIGNER.pem] FILE   (DER, PEM or base64)")
		return 2
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "scepd inspect:", err)
		return 1
	}
	der := decodeInput(raw)
	w := &printer{w: stdout}
	var extra []*cms.Certificate
	if *certPath != "" {
		b, err := os.ReadFile(*certPath)
		if err == nil {
			if c, err := cms.ParseCertificate(decodeInput(b)); err == nil {
				extra = append(extra, c)
			}
		}
	}
	var key crypto.Decrypter
	if *keyPath != "" {
		b, err := os.ReadFile(*keyPath)
		if err != nil {
			fmt.Fprintln(stderr, "scepd inspect:", err)
			return 1
		}
		pass, err := secretFromEnv("SCEPD_KEY_PASSPHRASE")
		if err != nil {
			fmt.Fprintln(stderr, "scepd inspect:", err)
			return 1
		}
		k, err := (keys.Source{Passphrase: []byte(pass)}).Parse(b)
		if err != nil {
			fmt.Fprintln(stderr, "scepd inspect:", err)
			return 1
		}
		d, ok := k.(crypto.Decrypter)
		if !ok {
			fmt.Fprintln(stderr, "scepd inspect: the key cannot decrypt")
			return 1
		}
		key = d
	}
	if err := inspect(w, der, key, extra); err != nil {
		fmt.Fprintln(stderr, "scepd inspect:", err)
		return 1
	}
	return 0
}

// decodeInput accepts DER, PEM or base64 (also with unescaped URL damage).
func decodeInput(b []byte) []byte {
	if block, _ := pem.Decode(b); block != nil {
		return block.Bytes
	}
	t := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, string(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding} {
		if d, err := enc.DecodeString(t); err == nil && len(d) > 0 && d[0] == 0x30 {
			return d
		}
	}
	return b
}

type printer struct{ w io.Writer }

func (p *printer) f(indent int, format string, args ...any) {
	fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", indent), fmt.Sprintf(format, args...))
}

func inspect(p *printer, der []byte, key crypto.Decrypter, extra []*cms.Certificate) error {
	if msg, err := scep.Parse(der, extra...); err == nil {
		return inspectMessage(p, msg, key)
	} else if sd, sdErr := cms.ParseSignedData(der); sdErr == nil {
		if len(sd.Signers) == 0 {
			p.f(0, "certs-only PKCS#7 (GetCACert or a CertRep's inner content): %d certificates, %d CRLs", len(sd.Certificates), len(sd.CRLs))
			for i, c := range sd.Certificates {
				certLine(p, 1, fmt.Sprintf("[%d]", i), c)
			}
			return nil
		}
		return fmt.Errorf("a SignedData, but not a usable SCEP message: %w", err)
	}
	if c, err := x509.ParseCertificate(der); err == nil {
		certLine(p, 0, "certificate", cms.FromX509(c))
		return nil
	}
	if csr, err := x509.ParseCertificateRequest(der); err == nil {
		csrLines(p, 0, csr)
		return nil
	}
	if _, err := cms.ParseEnvelopedData(der); err == nil {
		return errors.New("a bare EnvelopedData (the inside of a PKIMessage); inspect the whole message")
	}
	_, err := cms.ParseSignedData(der)
	return fmt.Errorf("not a SCEP message, certificate or CSR: %w", err)
}

func inspectMessage(p *printer, m *scep.Message, key crypto.Decrypter) error {
	p.f(0, "SCEP PKIMessage: %s (messageType %s)", m.Type, string(m.Type))
	p.f(1, "transactionID:   %q", m.TransactionID)
	if m.SenderNonce != nil {
		p.f(1, "senderNonce:     %x (%d bytes)", m.SenderNonce, len(m.SenderNonce))
	} else {
		p.f(1, "senderNonce:     none")
	}
	if m.RecipientNonce != nil {
		p.f(1, "recipientNonce:  %x", m.RecipientNonce)
	}
	p.f(1, "digest:          %v (signature verified)", m.Digest)
	certLine(p, 1, "signer:", m.Signer)
	if m.Type == scep.CertRep {
		status := map[scep.PKIStatus]string{scep.StatusSuccess: "SUCCESS", scep.StatusFailure: "FAILURE", scep.StatusPending: "PENDING"}[m.Status]
		p.f(1, "pkiStatus:       %s", status)
		if m.Status == scep.StatusFailure {
			p.f(1, "failInfo:        %s %q", m.FailInfo, m.FailInfoText)
		}
	}
	if len(m.Envelope) == 0 {
		p.f(1, "no pkcsPKIEnvelope")
		return nil
	}
	env, err := m.OpenEnvelope()
	if err != nil {
		return fmt.Errorf("the pkcsPKIEnvelope is unreadable: %w", err)
	}
	cipher := env.Cipher.String()
	if env.Cipher == 0 {
		cipher = "unsupported " + env.CipherOID.String()
	}
	p.f(1, "content cipher:  %s, %d encrypted bytes", cipher, len(env.EncryptedContent))
	for i, r := range env.Recipients {
		issuer, serial, ski := r.Identifier()
		if ski != nil {
			p.f(1, "recipient %d:     subjectKeyIdentifier %x, key transport %s", i, ski, r.KeyAlgorithm)
			continue
		}
		var name pkix.RDNSequence
		asn1.Unmarshal(issuer, &name)
		var n big.Int
		if len(serial) > 2 {
			n.SetBytes(serial[2:]) // the INTEGER's content after its tag and (short) length
		}
		p.f(1, "recipient %d:     issuer %q serial %s, key transport %s", i, name.String(), n.Text(16), r.KeyAlgorithm)
	}
	if key == nil {
		return nil
	}
	plain, err := env.Decrypt(key, nil)
	if err != nil {
		return fmt.Errorf("decrypting with the key given: %w", err)
	}
	p.f(1, "decrypted content (%d bytes):", len(plain))
	switch m.Type {
	case scep.PKCSReq, scep.RenewalReq, scep.UpdateReq:
		csr, err := scep.ParseCSR(plain)
		if err != nil {
			return err
		}
		csrLines(p, 2, csr)
	case scep.CertRep:
		ders, err := scep.DegenerateCertificates(plain)
		if err != nil {
			return fmt.Errorf("the CertRep content is not a certs-only PKCS#7: %w", err)
		}
		for i, d := range ders {
			c, err := cms.ParseCertificate(d)
			if err != nil {
				return err
			}
			certLine(p, 2, fmt.Sprintf("[%d]", i), c)
		}
	default:
		p.f(2, "%x", plain)
	}
	return nil
}

func certLine(p *printer, indent int, label string, c *cms.Certificate) {
	sum := sha256.Sum256(c.Raw)
	if c.X509 == nil {
		var subj pkix.RDNSequence
		asn1.Unmarshal(c.RawSubject, &subj)
		p.f(indent, "%s %q (crypto/x509 cannot parse this certificate; read leniently), sha256 %s", label, subj.String(), hex.EncodeToString(sum[:8]))
		return
	}
	x := c.X509
	selfSigned := bytes.Equal(x.RawIssuer, x.RawSubject)
	p.f(indent, "%s %q issued by %q, serial %s, %s, %s .. %s, self-signed %v, sha256 %s",
		label, x.Subject.String(), x.Issuer.String(), x.SerialNumber.Text(16), x.PublicKeyAlgorithm,
		x.NotBefore.Format("2006-01-02"), x.NotAfter.Format("2006-01-02"), selfSigned, hex.EncodeToString(sum[:]))
}

func csrLines(p *printer, indent int, csr *x509.CertificateRequest) {
	p.f(indent, "CSR subject:     %q", csr.Subject.String())
	sans := ca.CSRSANs(csr)
	p.f(indent, "CSR SANs:        %v", sans)
	p.f(indent, "CSR key:         %v, signature %v (verifies: %v)", csr.PublicKeyAlgorithm, csr.SignatureAlgorithm, csr.CheckSignature() == nil)
	if pw, err := scep.ChallengePassword(csr); err != nil {
		p.f(indent, "challengePassword: malformed (%v)", err)
	} else if pw != "" {
		p.f(indent, "challengePassword: present, %d characters (not shown)", len(pw))
	} else {
		p.f(indent, "challengePassword: none")
	}
}

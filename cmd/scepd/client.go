package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/scep/cms"
)

const clientUsage = `Usage:
  scepd client getcaps -url URL
  scepd client getca   -url URL [-out FILE.pem]
  scepd client enroll  -url URL -cn NAME [-challenge PW] [-dns a,b] [-key FILE] [-out FILE]
                       [-cipher aes128|aes256|3des|des] [-digest sha1|sha256|sha384|sha512] [-get]
The challenge: -challenge (its value shows in ps), else env SCEPD_CLIENT_CHALLENGE or
the file SCEPD_CLIENT_CHALLENGE_FILE names.
`

var ciphers = map[string]cms.Cipher{"des": cms.DES, "3des": cms.TripleDES, "aes128": cms.AES128, "aes192": cms.AES192, "aes256": cms.AES256}
var digests = map[string]crypto.Hash{"sha1": crypto.SHA1, "sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}

func clientCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientUsage)
		return 2
	}
	fs := flag.NewFlagSet("client "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "SCEP URL, e.g. http://localhost:8080/scep/default/pkiclient.exe")
	timeout := fs.Duration("timeout", time.Minute, "overall timeout")
	out := fs.String("out", "", "write the certificate(s) here as PEM (default: stdout)")
	challenge := fs.String("challenge", "", "challenge password (a flag value shows in ps; default: env SCEPD_CLIENT_CHALLENGE, or the file SCEPD_CLIENT_CHALLENGE_FILE names)")
	cn := fs.String("cn", "", "subject common name")
	org := fs.String("o", "", "subject organization")
	dns := fs.String("dns", "", "comma-separated DNS subjectAltNames")
	keyPath := fs.String("key", "", "RSA private key PEM; created (2048-bit) if the file does not exist")
	cipher := fs.String("cipher", "aes256", "content cipher: aes128, aes256, 3des or des")
	digest := fs.String("digest", "sha256", "digest: sha1, sha256, sha384 or sha512")
	useGET := fs.Bool("get", false, "send PKIOperation by GET instead of POST")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *url == "" {
		fmt.Fprintln(stderr, "scepd client: -url is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := client.New(*url)
	var err error
	switch args[0] {
	case "getcaps":
		var caps []string
		if caps, err = c.GetCACaps(ctx); err == nil {
			fmt.Fprintln(stdout, strings.Join(caps, "\n"))
		}
	case "getca":
		var certs []*x509.Certificate
		if certs, err = c.GetCACert(ctx); err == nil {
			for i, cert := range certs {
				sum := sha256.Sum256(cert.Raw)
				fmt.Fprintf(stderr, "%d: %s (CA: %v) sha256 %s\n", i, cert.Subject, cert.IsCA, hex.EncodeToString(sum[:]))
			}
			err = writeCerts(*out, stdout, certs)
		}
	case "enroll":
		if *challenge == "" {
			if *challenge, err = secretFromEnv("SCEPD_CLIENT_CHALLENGE"); err != nil {
				break
			}
		}
		err = enrollCmd(ctx, c, stdout, stderr, enrollFlags{*challenge, *cn, *org, *dns, *keyPath, *cipher, *digest, *out, *useGET})
	default:
		fmt.Fprintf(stderr, "scepd client: unknown command %q\n%s", args[0], clientUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "scepd client:", err)
		return 1
	}
	return 0
}

type enrollFlags struct {
	challenge, cn, org, dns, keyPath, cipher, digest, out string
	get                                                   bool
}

func enrollCmd(ctx context.Context, c *client.Client, stdout, stderr io.Writer, f enrollFlags) error {
	ciph, ok := ciphers[f.cipher]
	if !ok {
		return fmt.Errorf("unknown cipher %q", f.cipher)
	}
	dig, ok := digests[f.digest]
	if !ok {
		return fmt.Errorf("unknown digest %q", f.digest)
	}
	key, err := loadOrCreateKey(f.keyPath)
	if err != nil {
		return err
	}
	subj := pkix.Name{CommonName: f.cn}
	if f.org != "" {
		subj.Organization = []string{f.org}
	}
	var dnsNames []string
	if f.dns != "" {
		dnsNames = strings.Split(f.dns, ",")
	}
	certs, err := c.Enroll(ctx, client.Enrollment{
		Key: key, Subject: subj, DNSNames: dnsNames, Challenge: f.challenge,
		Cipher: ciph, Digest: dig, GET: f.get,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "issued: serial %s, subject %s, expires %s\n", certs[0].SerialNumber.Text(16), certs[0].Subject, certs[0].NotAfter.Format(time.RFC3339))
	return writeCerts(f.out, stdout, certs[:1])
}

func loadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			k, err := keys.ParsePEM(b)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, errors.New("the key must be RSA: SCEP replies are encrypted to it")
			}
			return rk, nil
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if path != "" {
		b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		if err := keys.WriteFile(path, b); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func writeCerts(path string, stdout io.Writer, certs []*x509.Certificate) error {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if path == "" {
		_, err := stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

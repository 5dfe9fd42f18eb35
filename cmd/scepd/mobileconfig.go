package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scepd/scepd/internal/admin"
	"github.com/scepd/scepd/internal/keys"
	"github.com/scepd/scepd/internal/mobileconfig"
)

// mobileconfigCmd writes an Apple configuration profile that enrolls a
// device with a profile: its SCEP URL, a challenge (a static one given
// here, or a one-time challenge minted now) and the CA chain to trust.
var mobileconfigCmd = command{
	"--profile ID [--challenge-env VAR | --mint] [--url BASE] [--subject /CN=...] [--sign-cert PEM --sign-key PEM] [--out FILE]",
	func(ctx context.Context, f *adminFlags, args []string, w io.Writer) error {
		profile := f.fs.String("profile", "default", "the profile devices enroll with")
		base := f.fs.String("url", "", "base URL devices reach scepd at, e.g. https://pki.example.com (default: env SCEPD_PUBLIC_URL, else --server)")
		challengeEnv := f.fs.String("challenge-env", "", "put the static challenge held in this environment variable into the profile")
		challengeFlag := f.fs.String("challenge", "", "the static challenge itself (a flag value shows in ps: prefer --challenge-env)")
		mint := f.fs.Bool("mint", false, "mint a one-time challenge for a dynamic profile and put it into the profile (one device enrolls with it)")
		bind := f.fs.String("bind", "", "with --mint: only a request carrying this CN or SAN value may use the challenge")
		subject := f.fs.String("subject", "/CN=%ComputerName%", "requested subject, /ATTR=value/... or ATTR=value,...; Apple substitutes variables such as %ComputerName% and %HardwareUUID% on macOS")
		keySize := f.fs.Int("key-size", 0, "RSA key size the device generates: 1024, 2048 or 4096 (default: the profile's rsa_min_bits rounded up, at least 2048)")
		retries := f.fs.Int("retries", 3, "how often the device polls while a request waits for approval")
		retryDelay := f.fs.Int("retry-delay", 10, "seconds between those polls")
		prefix := f.fs.String("identifier", "scepd", "reverse-DNS prefix of the PayloadIdentifiers, e.g. com.example.scepd")
		org := f.fs.String("organization", "", "PayloadOrganization shown on the device")
		out := f.fs.String("out", "", "write the profile to this file (default: standard output)")
		signCert := f.fs.String("sign-cert", "", "sign the profile (CMS, DER) with this PEM certificate, its issuers after it")
		signKey := f.fs.String("sign-key", "", "the signing certificate's PEM private key (unencrypted)")
		if _, err := f.parse(args); err != nil {
			return err
		}
		challenge := *challengeFlag
		if *challengeEnv != "" {
			challenge = os.Getenv(*challengeEnv)
			if challenge == "" {
				return fmt.Errorf("--challenge-env %s: the variable is empty", *challengeEnv)
			}
		}
		if *mint && challenge != "" {
			return errors.New("--mint and a static challenge exclude each other")
		}
		if *base == "" {
			*base = os.Getenv("SCEPD_PUBLIC_URL")
		}
		if *base == "" {
			*base = *f.server
		}
		if *base == "" {
			return errors.New("no URL for devices: set --url (or SCEPD_PUBLIC_URL)")
		}
		subj, err := mobileconfig.ParseSubject(*subject)
		if err != nil {
			return err
		}
		var sign func([]byte) ([]byte, error)
		if *signCert != "" || *signKey != "" {
			if sign, err = profileSigner(*signCert, *signKey); err != nil {
				return err
			}
		}
		return withAPI(ctx, f, func(api admin.API) error {
			p, err := api.GetProfile(ctx, *profile)
			if err != nil {
				return err
			}
			switch {
			case *mint && p.ChallengeMode != "dynamic":
				return fmt.Errorf("--mint: profile %s has challenge mode %s, not dynamic", p.ID, p.ChallengeMode)
			case !*mint && challenge == "" && p.ChallengeMode == "dynamic":
				return fmt.Errorf("profile %s has dynamic challenges: use --mint (one device per profile file)", p.ID)
			case !*mint && challenge == "" && p.ChallengeMode == "static":
				return fmt.Errorf("profile %s has a static challenge: pass it with --challenge-env VAR", p.ID)
			}
			size := *keySize
			if size == 0 {
				if size, err = keySizeFor(p.Policy.Keys.RSAMinBits); err != nil {
					return fmt.Errorf("profile %s: %w", p.ID, err)
				}
			}
			// The CA devices' certificates chain to: in RA mode the
			// upstream's (as GetCACert hands it out), not the profile's
			// CA, its RA issuer, which issues nothing to devices.
			chain := p.UpstreamCAChain
			if len(chain) == 0 {
				if chain, err = api.CAChain(ctx, p.CA); err != nil {
					return err
				}
			}
			if *mint {
				c, err := api.CreateChallenge(ctx, p.ID, *bind)
				if err != nil {
					return err
				}
				challenge = c.Challenge
			}
			b, err := mobileconfig.Render(mobileconfig.Profile{
				ID: p.ID, URL: strings.TrimRight(*base, "/") + p.Path, Subject: subj, KeySize: size,
				KeyUsage: keyUsageFor(p.Policy.KeyUsage), Challenge: challenge, Retries: *retries, RetryDelay: *retryDelay,
				CAChain: chain, IdentifierPrefix: *prefix, Organization: *org,
			})
			if err != nil {
				return err
			}
			if sign != nil {
				if b, err = sign(b); err != nil {
					return err
				}
			}
			if *out == "" {
				_, err = w.Write(b)
				return err
			}
			// The file holds a challenge: readable by its owner only, also
			// when it replaces a file others could read.
			return keys.WriteFile(*out, b)
		})
	},
}

// profileSigner reads the signing certificate chain and key first, so a
// bad file stops the command before a challenge is minted.
func profileSigner(certFile, keyFile string) (func([]byte) ([]byte, error), error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("signing needs both --sign-cert and --sign-key")
	}
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for rest := cb; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--sign-cert %s: %w", certFile, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("--sign-cert %s: no PEM certificate", certFile)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	key, err := keys.ParsePEM(kb)
	if err != nil {
		return nil, fmt.Errorf("--sign-key %s: %w", keyFile, err)
	}
	if _, err := mobileconfig.Sign(nil, chain, key); err != nil {
		return nil, err
	}
	return func(b []byte) ([]byte, error) { return mobileconfig.Sign(b, chain, key) }, nil
}

// keySizeFor picks the SCEP payload's key size for a profile's smallest
// accepted RSA key (0: 2048; -1: RSA refused). Apple devices generate
// only RSA keys for SCEP.
func keySizeFor(minBits int) (int, error) {
	switch {
	case minBits < 0:
		return 0, errors.New("refuses RSA keys, and Apple's SCEP payload requests only RSA")
	case minBits <= 2048:
		return 2048, nil
	case minBits <= 4096:
		return 4096, nil
	}
	return 0, fmt.Errorf("rsa_min_bits %d is above the 4096 an Apple device generates", minBits)
}

// keyUsageFor maps the profile's key usage names to the payload's bits;
// the profile's default (digitalSignature, keyEncipherment for RSA) is both.
func keyUsageFor(names []string) int {
	if len(names) == 0 {
		return mobileconfig.UsageSigning | mobileconfig.UsageEncryption
	}
	bits := 0
	for _, n := range names {
		switch n {
		case "digitalSignature":
			bits |= mobileconfig.UsageSigning
		case "keyEncipherment":
			bits |= mobileconfig.UsageEncryption
		}
	}
	return bits
}

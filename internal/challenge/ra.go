package challenge

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scepd/scepd/internal/ca"
)

// TrustedRA authorises requests a registration authority signed (challenge
// mode ra, EJBCA's RA mode): the SCEP message's signer certificate must
// chain to one of Anchors, be valid at Now, carry the RA extended key
// usage (ca.OIDCMCRA: device certificates of the same CA, clientAuth,
// must not pass for RAs), have digitalSignature when it has a keyUsage, and not
// be revoked here (Revoked). The CSR's
// challengePassword is not looked at: the RA authorised the device.
type TrustedRA struct {
	Anchors *x509.CertPool
	Now     func() time.Time
	// Revoked, when set, reports whether a certificate this server issued
	// has been revoked (false for one it did not issue): a revoked RA is
	// refused.
	Revoked func(ctx context.Context, c *x509.Certificate) (bool, error)
}

var _ Validator = (*TrustedRA)(nil)

// NewTrustedRA makes the validator of the anchors' DER certificates.
func NewTrustedRA(anchorsDER [][]byte, now func() time.Time) (*TrustedRA, error) {
	if len(anchorsDER) == 0 {
		return nil, errors.New("trusted_ra: no CA certificate")
	}
	pool := x509.NewCertPool()
	for _, der := range anchorsDER {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("trusted_ra: %w", err)
		}
		pool.AddCert(c)
	}
	if now == nil {
		now = time.Now
	}
	return &TrustedRA{Anchors: pool, Now: now}, nil
}

// Validate accepts a request whose signer is a trusted RA; the grant's
// details name it (subject, serial, SHA-256 fingerprint).
func (t *TrustedRA) Validate(ctx context.Context, r Request) (Grant, error) {
	s := r.Signer
	if s == nil {
		return Grant{}, &Rejected{Reason: "the request is not signed by a registration authority this profile trusts"}
	}
	if _, err := s.Verify(x509.VerifyOptions{Roots: t.Anchors, CurrentTime: t.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return Grant{}, &Rejected{Reason: fmt.Sprintf("the signer %s is not a registration authority this profile trusts: %v", s.Subject, err)}
	}
	if !slices.ContainsFunc(s.UnknownExtKeyUsage, ca.OIDCMCRA().Equal) {
		return Grant{}, &Rejected{Reason: fmt.Sprintf("the signer %s is not a registration authority: its certificate lacks the RA extended key usage (id-kp-cmcRA, 1.3.6.1.5.5.7.3.28)", s.Subject)}
	}
	if t.Revoked != nil {
		revoked, err := t.Revoked(ctx, s)
		if err != nil {
			return Grant{}, fmt.Errorf("challenge: the registration authority's status: %w", err)
		}
		if revoked {
			return Grant{}, &Rejected{Reason: fmt.Sprintf("the registration authority %s is revoked", s.Subject)}
		}
	}
	if s.KeyUsage != 0 && s.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return Grant{}, &Rejected{Reason: fmt.Sprintf("the registration authority %s may not sign (no digitalSignature in its keyUsage)", s.Subject)}
	}
	sum := sha256.Sum256(s.Raw)
	return Grant{Details: map[string]string{"ra_subject": s.Subject.String(), "ra_serial": s.SerialNumber.Text(16),
		"ra_fingerprint": "sha256:" + hex.EncodeToString(sum[:])}}, nil
}

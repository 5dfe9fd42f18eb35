package ca

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"time"
)

// Revoked is one entry of a CRL.
type Revoked struct {
	Serial *big.Int
	At     time.Time
	// Reason is the RFC 5280 §5.3.1 CRLReason; 0 (unspecified) is left out.
	Reason int
}

// CRL signs a certificate revocation list (RFC 5280 §5) numbered number,
// valid from now until next.
func (c *CA) CRL(revoked []Revoked, number int64, now, next time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: r.At.UTC(), ReasonCode: r.Reason})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                now.UTC(),
		NextUpdate:                next.UTC(),
	}
	der, err := x509.CreateRevocationList(c.rand(), tmpl, c.Cert, c.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: signing CRL %d: %w", number, err)
	}
	return der, nil
}

// Reasons names the RFC 5280 CRLReason codes operators may give.
var Reasons = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
	"cessationOfOperation": 5, "certificateHold": 6, "removeFromCRL": 8, "privilegeWithdrawn": 9, "aACompromise": 10,
}

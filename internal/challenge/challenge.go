// Package challenge decides whether a first enrollment is authorised. Each
// mode is a Validator; the enrollment use case only sees the interface.
package challenge

import (
	"context"
	"crypto/x509"
	"errors"
)

// ErrInvalid is returned when the challenge password is wrong, missing,
// expired or used. The message never contains the submitted password.
var ErrInvalid = errors.New("challenge password is not valid")

// Request is what a validator may look at.
type Request struct {
	ProfileID     string
	TransactionID string
	// Password is the CSR's challengePassword attribute; treat as secret.
	Password string
	CSR      *x509.CertificateRequest
	// RemoteAddr is the client's address (for delegated validators).
	RemoteAddr string
	// Signer is the certificate that signed the SCEP message (its
	// signature is verified); nil when crypto/x509 could not parse it.
	Signer *x509.Certificate
}

// Grant is what a successful validation hands to the enrollment.
type Grant struct {
	// OneTime, when set, identifies a one-time challenge that the enrollment
	// must consume in the same database transaction that stores the
	// certificate, so that it is spent exactly when a certificate exists.
	OneTime []byte
	// EntityUser, when set, names a registered end entity whose code loses
	// one use in that same transaction.
	EntityUser string
	// Reason explains a refusal for logs and failInfoText (no secrets).
	Reason string
	// Details name who authorised the request (a registration authority's
	// certificate, say) for the enrollment's audit event.
	Details map[string]string
}

// Notifier is implemented by validators that report the outcome back to
// whoever authorised the request (Intune, an operator's webhook).
type Notifier interface {
	// Issued is called after the certificate is stored.
	Issued(ctx context.Context, r Request, cert *x509.Certificate)
	// Failed is called when a request this validator allowed was not issued.
	Failed(ctx context.Context, r Request, reason string)
}

// Rejected is a refusal with a reason safe to tell the client and log.
type Rejected struct{ Reason string }

func (r *Rejected) Error() string { return "challenge refused: " + r.Reason }
func (r *Rejected) Unwrap() error { return ErrInvalid }

// Validator authorises a first enrollment.
type Validator interface {
	Validate(ctx context.Context, r Request) (Grant, error)
}

// None accepts every request: for profiles that authorise some other way
// (manual approval, network isolation). Never the default.
type None struct{}

var _ Validator = None{}

// Validate accepts.
func (None) Validate(context.Context, Request) (Grant, error) { return Grant{}, nil }

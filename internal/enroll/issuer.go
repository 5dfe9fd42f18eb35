package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/scepd/scepd/internal/ca"
)

// Issuer obtains the certificate of an authorised request. Enrollment
// decides whether a request may have one (challenge, policy, approval,
// renewal rules); the issuer only obtains it: the profile's local CA signs
// it, or an upstream CA (RA mode) is asked for it. Other kinds of upstream
// (ACME, EST, a cloud CA's API) are further implementations.
type Issuer interface {
	// Name is how certificates it obtains are marked ("scep:<url>"); ""
	// for the local CA.
	Name() string
	Issue(ctx context.Context, req IssueRequest) (Issuance, error)
	// Poll asks again for a request Issue answered Pending, with the
	// token it gave: the certificate, Pending again, or an error.
	Poll(ctx context.Context, req IssueRequest, token []byte) (Issuance, error)
}

// IssueRequest is what an issuer is asked for.
type IssueRequest struct {
	ProfileID     string
	TransactionID string
	// CSR is the device's request (an upstream receives it as is).
	CSR *x509.CertificateRequest
	// Template is the certificate the profile's policy decided on; a local
	// CA signs it, an upstream applies its own template.
	Template *x509.Certificate
}

// Issuance is an issuer's answer: the certificate, with the upstream that
// issued it ("" for the local CA).
type Issuance struct {
	// Issued is the certificate (see ca.IssuedFrom for one received from
	// elsewhere).
	Issued   ca.Issued
	Upstream string
	// Pending: the upstream holds the request (its manager approves, say);
	// Token polls it (Issuer.Poll). The device hears PENDING and polls.
	Pending bool
	Token   []byte
}

// UpstreamError is an upstream CA that failed or refused to issue (down,
// too slow, answering FAILURE or still PENDING when its time ran out).
// The device hears a SCEP FAILURE naming Reason; nothing is stored.
type UpstreamError struct {
	Upstream string
	// Reason is safe to tell the device and to log: no secrets.
	Reason string
	// Refused: the upstream answered FAILURE (final), rather than being
	// unreachable or slow (which a later poll may get past).
	Refused bool
	Err     error
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream %s: %s", e.Upstream, e.Reason)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// LocalCA is the Issuer of a profile whose CA scepd holds.
type LocalCA struct{ CA *ca.CA }

var _ Issuer = LocalCA{}

// Name: certificates of the local CA carry no upstream mark.
func (LocalCA) Name() string { return "" }

// Issue signs the policy's template for the CSR's key.
func (l LocalCA) Issue(_ context.Context, req IssueRequest) (Issuance, error) {
	if l.CA == nil {
		return Issuance{}, errors.New("enroll: the profile has no CA")
	}
	cert, err := l.CA.Issue(req.Template, req.CSR.PublicKey)
	if err != nil {
		return Issuance{}, err
	}
	return Issuance{Issued: cert}, nil
}

// Poll: a local CA never answers Pending.
func (l LocalCA) Poll(context.Context, IssueRequest, []byte) (Issuance, error) {
	return Issuance{}, errors.New("enroll: the local CA holds nothing to poll")
}

// issuer is the profile's issuer: its upstream in RA mode, else its CA.
func (p *Profile) issuer() Issuer {
	if p.Issuer != nil {
		return p.Issuer
	}
	return LocalCA{CA: p.CA}
}

// Package pkiop decides SCEP PKIOperations: a parsed PKIMessage in, the
// reply to sign as CertRep out. It opens the envelope (refusing MD5
// digests and, unless the profile allows it, single DES), decrypts it with
// the profile's RA key, parses what the message type carries and hands it
// to enrollment. It reads no HTTP and writes no bytes: the server package
// does, around it.
//
// It sits between scep (the wire format) and enroll (the use case, which
// admin approvals also drive and which knows nothing of envelopes, ciphers
// or RA keys).
package pkiop

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"

	"github.com/scepd/scepd/internal/enroll"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/store"
)

// Enroller is the enrollment use case a decision hands requests to.
type Enroller interface {
	PKCSReq(ctx context.Context, p *enroll.Profile, r enroll.Request) (enroll.Result, error)
	Expect(ctx context.Context, p *enroll.Profile) (_ context.Context, done func())
	Poll(ctx context.Context, p *enroll.Profile, transactionID string, signer crypto.PublicKey, remoteAddr string) (enroll.Result, error)
	GetCert(ctx context.Context, p *enroll.Profile, issuer []byte, serial *big.Int, requester *x509.Certificate) (*x509.Certificate, error)
	// CRLIssuer is the profile's CA whose CRL answers GetCRL for issuer
	// and serial; a Rejection (badCertID) when the issuer is none of them.
	CRLIssuer(ctx context.Context, p *enroll.Profile, issuer []byte, serial *big.Int) (caID string, err error)
}

// CRLs returns a CA's current CRL (GetCRL).
type CRLs interface {
	CRL(ctx context.Context, caID string) (store.CRL, error)
}

var _ Enroller = (*enroll.Service)(nil)

// Profile is a profile as the receiver of PKIOperations: its enrollment
// settings and the RA identity requests are encrypted to.
type Profile struct {
	Enroll *enroll.Profile
	// Decrypter is the RA key (the CA's in CA mode); RA its certificate.
	Decrypter crypto.Decrypter
	RA        *cms.Certificate
	// AltDecrypter and AltRA are the profile's other RA while a CA
	// rollover is scheduled: after the switch the one before it (a device
	// that fetched GetCACert before, a request pending across the switch
	// polling), before it the next one (a device that fetched GetCACert
	// from a replica that switched a few seconds earlier).
	AltDecrypter crypto.Decrypter
	AltRA        *cms.Certificate
	// AllowDES accepts single-DES envelopes (legacy devices).
	AllowDES bool
	// Chain is appended to the certificates of a SUCCESS reply.
	Chain [][]byte
}

// Decider decides PKIOperations.
type Decider struct {
	Enroller Enroller
	// CRLs answers GetCRL; nil: no CRL is published here.
	CRLs CRLs
}

// Decide turns a parsed (signature-verified) message into the reply.
// Every refusal is a reply with status FAILURE and its failInfo (RFC 8894
// §3.3.2.2), to be signed as a CertRep. An error is an internal failure:
// the HTTP layer answers 500, so the client retries later rather than
// taking a FAILURE as final. remoteAddr is recorded with the request.
func (d Decider) Decide(ctx context.Context, p *Profile, msg *scep.Message, remoteAddr string) (reply scep.Reply, err error) {
	var cipher cms.Cipher // known once the envelope is parsed; logged with failures too
	altRA := false        // encrypted to the other RA of a rollover: answered by it
	defer func() { reply.ToAlternateRA = altRA }()
	fail := func(fi scep.FailInfo, format string, args ...any) (scep.Reply, error) {
		return scep.Reply{Status: scep.StatusFailure, FailInfo: fi, FailText: fmt.Sprintf(format, args...), Cipher: cipher}, nil
	}
	switch msg.Type {
	case scep.PKCSReq, scep.RenewalReq, scep.UpdateReq, scep.CertPoll, scep.GetCert, scep.GetCRL:
	default:
		return fail(scep.BadRequest, "unknown messageType %q", string(msg.Type))
	}
	if msg.Type == scep.PKCSReq || msg.Type == scep.RenewalReq || msg.Type == scep.UpdateReq {
		// From here an enrollment is decided and written within a few
		// milliseconds: commits about to begin may wait for it.
		var done func()
		ctx, done = d.Enroller.Expect(ctx, p.Enroll)
		defer done()
	}
	env, err := msg.OpenEnvelope()
	if err != nil {
		return fail(scep.BadMessageCheck, "pkcsPKIEnvelope is malformed")
	}
	cipher = env.Cipher
	// Every answer from here, refusals included, is signed by the RA the
	// client encrypted to: the one it can check.
	altRA = p.AltRA != nil && !env.For(p.RA) && env.For(p.AltRA)
	if msg.Digest == crypto.MD5 {
		return fail(scep.BadAlg, "MD5 message digests are refused")
	}
	switch {
	case env.Cipher == 0:
		return fail(scep.BadAlg, "content cipher %s is not supported", env.CipherOID)
	case env.Cipher == cms.DES && !p.AllowDES:
		return fail(scep.BadAlg, "single DES content encryption is disabled on this profile; use AES or 3DES")
	}
	dec, ra := p.Decrypter, p.RA
	if altRA {
		dec, ra = p.AltDecrypter, p.AltRA
	}
	plain, err := env.Decrypt(dec, ra)
	if errors.Is(err, cms.ErrNoRecipient) {
		return fail(scep.BadMessageCheck, "the request is not encrypted to this profile's RA certificate")
	}
	// One answer for every way the envelope can be wrong: a failed key
	// unwrap, bad content padding, or content that is not what the message
	// type needs. Telling them apart would be a padding oracle (RFC 3218 §2.3).
	undecryptable := func() (scep.Reply, error) {
		return fail(scep.BadMessageCheck, "the request cannot be decrypted")
	}
	if err != nil {
		return undecryptable()
	}
	// Certificates this CA issued parse in Go; a self-signed requester that
	// does not is simply not one of ours.
	signer := msg.Signer.X509
	success := func(certs ...[]byte) (scep.Reply, error) {
		return scep.Reply{Status: scep.StatusSuccess, Certificates: append(certs, p.Chain...), Cipher: env.Cipher}, nil
	}
	var res enroll.Result
	switch msg.Type {
	case scep.PKCSReq, scep.RenewalReq, scep.UpdateReq:
		csr, err := scep.ParseCSR(plain)
		if err != nil {
			return undecryptable()
		}
		password, err := scep.ChallengePassword(csr)
		if err != nil {
			return fail(scep.BadRequest, "the challengePassword attribute is malformed")
		}
		res, err = d.Enroller.PKCSReq(ctx, p.Enroll, enroll.Request{
			TransactionID: msg.TransactionID, CSR: csr, Password: password, RemoteAddr: remoteAddr,
			Renewal: msg.Type != scep.PKCSReq, Signer: signer, SignerKey: msg.Signer.PublicKey, SenderNonce: msg.SenderNonce,
		})
		if rej, ok := asRejection(err); ok {
			return fail(rej.FailInfo, "%s", rej.Reason)
		}
		if err != nil {
			return scep.Reply{}, err
		}
	case scep.CertPoll:
		if _, err := scep.ParseIssuerAndSubject(plain); err != nil {
			return undecryptable()
		}
		// Answered only to the key that sent the request (clients sign
		// CertPoll as they signed it).
		res, err = d.Enroller.Poll(ctx, p.Enroll, msg.TransactionID, msg.Signer.PublicKey, remoteAddr)
		if rej, ok := asRejection(err); ok {
			return fail(rej.FailInfo, "%s", rej.Reason)
		}
		if err != nil {
			return scep.Reply{}, err
		}
	case scep.GetCert:
		ias, err := scep.ParseIssuerAndSerial(plain)
		if err != nil {
			return undecryptable()
		}
		c, err := d.Enroller.GetCert(ctx, p.Enroll, ias.Issuer, ias.Serial, signer)
		if rej, ok := asRejection(err); ok {
			return fail(rej.FailInfo, "%s", rej.Reason)
		}
		if err != nil {
			return scep.Reply{}, err
		}
		return success(c.Raw)
	case scep.GetCRL:
		ias, err := scep.ParseIssuerAndSerial(plain)
		if err != nil {
			return undecryptable()
		}
		if up := p.Enroll.Issuer; up != nil {
			// RA mode: the RA issuer's CRL would list none of the profile's
			// certificates, which the upstream revokes.
			return fail(scep.BadRequest, "CRLs of the upstream CA %s are published by it: see its CRL distribution point", up.Name())
		}
		if d.CRLs == nil {
			return fail(scep.BadRequest, "no CRL is published here")
		}
		// The CRL of the named certificate's issuer (RFC 8894 §3.3.5): after
		// a rollover, a certificate of the previous CA is on that CA's CRL,
		// never on the current one's.
		caID, err := d.Enroller.CRLIssuer(ctx, p.Enroll, ias.Issuer, ias.Serial)
		if rej, ok := asRejection(err); ok {
			return fail(rej.FailInfo, "%s", rej.Reason)
		}
		if err != nil {
			return scep.Reply{}, err
		}
		crl, err := d.CRLs.CRL(ctx, caID)
		if err != nil {
			return scep.Reply{}, err
		}
		return scep.Reply{Status: scep.StatusSuccess, CRL: crl.DER, Cipher: env.Cipher}, nil
	}
	if res.Pending {
		return scep.Reply{Status: scep.StatusPending, Cipher: env.Cipher}, nil
	}
	// The cipher is never a default: answer in the cipher the client used.
	return success(res.DER)
}

func asRejection(err error) (*enroll.Rejection, bool) {
	var rej *enroll.Rejection
	ok := errors.As(err, &rej)
	return rej, ok
}

package mobileconfig

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/scepd/scepd/internal/ca"
	"github.com/scepd/scepd/internal/scep/cms"
)

// Sign wraps a configuration profile in a CMS SignedData (DER, the profile
// as its content), the form Apple devices install as a signed profile.
// chain is the signing certificate first, then its issuers (all included);
// key is the signing certificate's key.
func Sign(profile []byte, chain []*x509.Certificate, key crypto.Signer) ([]byte, error) {
	if len(chain) == 0 {
		return nil, errors.New("signing: no certificate")
	}
	if !ca.KeyMatches(chain[0], key) {
		return nil, fmt.Errorf("signing: the key does not belong to the certificate %s", chain[0].Subject)
	}
	certs := make([][]byte, len(chain))
	for i, c := range chain {
		certs[i] = c.Raw
	}
	s := cms.Signer{Cert: cms.FromX509(chain[0]), Key: key, Hash: crypto.SHA256, Certificates: certs}
	return s.Sign(profile, nil, nil)
}

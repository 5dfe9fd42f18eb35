package server

import (
	"crypto"
	"crypto/rand"
	"fmt"

	"github.com/scepd/scepd/internal/scep/cms"
)

// raSealer seals data for the profile's RA alone: a CMS envelope (AES-256)
// to its certificate, opened with its key. Every replica holds the RA key,
// so any of them opens what another sealed; a new RA key cannot.
type raSealer struct {
	cert *cms.Certificate
	key  crypto.Decrypter
}

func (s raSealer) Seal(plaintext []byte) ([]byte, error) {
	return cms.Encrypt(plaintext, s.cert, cms.AES256, rand.Reader)
}

func (s raSealer) Open(sealed []byte) ([]byte, error) {
	env, err := cms.ParseEnvelopedData(sealed)
	if err != nil {
		return nil, fmt.Errorf("sealed data: %w", err)
	}
	out, err := env.Decrypt(s.key, s.cert)
	if err != nil {
		return nil, fmt.Errorf("sealed data (sealed for another RA key?): %w", err)
	}
	return out, nil
}

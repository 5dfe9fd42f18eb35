package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/scepd/scepd/internal/ca"
)

// pkcs12ToPEM reads a PKCS#12 bundle into a PEM chain and a PEM key.
func pkcs12ToPEM(path, password string) (string, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	key, chain, err := ca.ParsePKCS12(b, password)
	if err != nil {
		return "", "", err
	}
	var certs []byte
	for _, c := range chain {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("PKCS#12 key: %w", err)
	}
	return string(certs), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

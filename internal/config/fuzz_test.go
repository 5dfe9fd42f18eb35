package config

import (
	"os"
	"testing"
)

// FuzzParse: the config file (and the API's JSON bodies, which are YAML
// too) never crash the decoder or Validate.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../scepd.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("profiles: [{id: a, ca: b, challenge: {mode: dynamic}, policy: {subject: {template: ['CN={{.CSR.Subject.CommonName}}']}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		cfg.Validate()
	})
}

package cms

import (
	"os"
	"path/filepath"
	"testing"
)

// seeds adds every captured real-client message as a fuzz seed.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("../testdata/captures/*/*.der")
	more, _ := filepath.Glob("../testdata/captures/*/*/*.pkcs7")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00})
}

func FuzzParseSignedData(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := ParseSignedData(b)
		if err != nil {
			return
		}
		sd.Verify()
	})
}

func FuzzParseEnvelopedData(f *testing.F) {
	seeds(f)
	for _, p := range []string{"../testdata/captures/jscep-jscep/scep_req1.der", "../testdata/captures/jscep-jscep/scep_resp1.der"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelopedData(b)
		if err != nil || e.Cipher == 0 {
			return
		}
		e.Decrypt(rsaKey, nil)
	})
}

func FuzzNormalize(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := normalize(b)
		if err != nil {
			return
		}
		// The shortcut for input already in normal form agrees with the
		// rewrite.
		slow, _, err := (&normalizer{}).element(b, 0)
		if err != nil || string(slow) != string(out) {
			t.Fatalf("normalize = % x, element = % x, %v", out, slow, err)
		}
		// Normal form is a fixed point.
		again, err := normalize(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("normalize is not idempotent: %v", err)
		}
	})
}

package keys

import (
	"crypto/elliptic"
	"errors"
	"net/url"
	"strings"
)

// TokenConfig names a PKCS#11 token (an HSM, or SoftHSM2 for tests).
type TokenConfig struct {
	// Module is the path of the vendor's PKCS#11 library.
	Module string
	// Label is the token's label.
	Label string
	// PIN is the user PIN (from the environment or a file, never a flag).
	PIN string
}

// ErrNoPKCS11 is returned when a token is configured or referenced but this
// binary was built without PKCS#11 support (it needs cgo: go build -tags pkcs11).
var ErrNoPKCS11 = errors.New("keys: this scepd was built without PKCS#11 support (build with -tags pkcs11)")

// Algorithm describes a key to generate: RSA of RSABits, or ECDSA on Curve.
type Algorithm struct {
	RSABits int
	Curve   elliptic.Curve
}

// tokenRef is the key reference of a token object: an RFC 7512 style URI
// naming the object by label ("pkcs11:object=ca%2Fdefault-1a2b").
func tokenRef(label string) string { return "pkcs11:object=" + url.PathEscape(label) }

// parseTokenRef returns the object label of a "pkcs11:" reference.
func parseTokenRef(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, "pkcs11:")
	if !ok {
		return "", false
	}
	for attr := range strings.SplitSeq(rest, ";") {
		if v, ok := strings.CutPrefix(attr, "object="); ok {
			label, err := url.PathUnescape(v)
			return label, err == nil && label != ""
		}
	}
	return "", false
}

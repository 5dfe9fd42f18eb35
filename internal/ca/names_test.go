package ca

import (
	"crypto/x509"
	"slices"
	"testing"
)

// TestUsageNames: the one table of keyUsage and EKU names reads both
// ways; aliases name the same usage; what a policy may not issue (CA
// usages, any, OCSPSigning) is only ever shown.
func TestUsageNames(t *testing.T) {
	for name, want := range map[string]x509.KeyUsage{"digitalSignature": x509.KeyUsageDigitalSignature, "nonRepudiation": x509.KeyUsageContentCommitment,
		"contentCommitment": x509.KeyUsageContentCommitment, "keyAgreement": x509.KeyUsageKeyAgreement} {
		if got, ok := KeyUsageByName(name); !ok || got != want {
			t.Errorf("KeyUsageByName(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"keyCertSign", "cRLSign", "DigitalSignature", ""} {
		if _, ok := KeyUsageByName(name); ok {
			t.Errorf("KeyUsageByName(%q) accepted", name)
		}
	}
	if got := KeyUsageNames(x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign); !slices.Equal(got, []string{"digitalSignature", "contentCommitment", "keyCertSign"}) {
		t.Errorf("KeyUsageNames = %v", got)
	}
	if eku, ok := ExtKeyUsageByName("ipsecIKE"); !ok || eku != x509.ExtKeyUsageIPSECEndSystem {
		t.Errorf("ExtKeyUsageByName(ipsecIKE) = %v %v", eku, ok)
	}
	if _, ok := ExtKeyUsageByName("OCSPSigning"); ok {
		t.Error("a policy may name OCSPSigning")
	}
	if n, ok := ExtKeyUsageName(x509.ExtKeyUsageIPSECEndSystem); !ok || n != "ipsecEndSystem" {
		t.Errorf("ExtKeyUsageName(IPSECEndSystem) = %q", n)
	}
	if n, ok := ExtKeyUsageName(x509.ExtKeyUsageOCSPSigning); !ok || n != "OCSPSigning" {
		t.Errorf("ExtKeyUsageName(OCSPSigning) = %q", n)
	}
}

func TestKeyTypes(t *testing.T) {
	if !slices.Equal(RAKeyTypes(), []KeyType{RSA2048, RSA3072, RSA4096}) {
		t.Errorf("RAKeyTypes() = %v", RAKeyTypes())
	}
	if KeyType("dsa").Valid() || KeyType("").RSA() || ECDSAP256.RSA() || !ECDSAP384.Valid() {
		t.Error("Valid/RSA disagree with the table")
	}
	if got := KeyTypeList(RAKeyTypes()); got != "rsa-2048, rsa-3072 or rsa-4096" {
		t.Errorf("KeyTypeList = %q", got)
	}
}

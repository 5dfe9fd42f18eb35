package ca

import "crypto/x509"

// The names of keyUsage bits (RFC 5280 §4.2.1.3) and EKUs (§4.2.1.12),
// one table each: a policy names what it issues with them, and a
// certificate is described with them. issuable says a policy may name it;
// where several names mean one usage, the first is the one shown.

var keyUsageNames = []struct {
	bit      x509.KeyUsage
	name     string
	issuable bool
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature", true},
	{x509.KeyUsageContentCommitment, "contentCommitment", true},
	{x509.KeyUsageContentCommitment, "nonRepudiation", true},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment", true},
	{x509.KeyUsageDataEncipherment, "dataEncipherment", true},
	{x509.KeyUsageKeyAgreement, "keyAgreement", true},
	{x509.KeyUsageCertSign, "keyCertSign", false},
	{x509.KeyUsageCRLSign, "cRLSign", false},
	{x509.KeyUsageEncipherOnly, "encipherOnly", false},
	{x509.KeyUsageDecipherOnly, "decipherOnly", false},
}

var extKeyUsageNames = []struct {
	eku      x509.ExtKeyUsage
	name     string
	issuable bool
}{
	{x509.ExtKeyUsageAny, "any", false},
	{x509.ExtKeyUsageServerAuth, "serverAuth", true},
	{x509.ExtKeyUsageClientAuth, "clientAuth", true},
	{x509.ExtKeyUsageCodeSigning, "codeSigning", true},
	{x509.ExtKeyUsageEmailProtection, "emailProtection", true},
	{x509.ExtKeyUsageIPSECEndSystem, "ipsecEndSystem", true},
	{x509.ExtKeyUsageIPSECEndSystem, "ipsecIKE", true},
	{x509.ExtKeyUsageIPSECTunnel, "ipsecTunnel", true},
	{x509.ExtKeyUsageIPSECUser, "ipsecUser", true},
	{x509.ExtKeyUsageTimeStamping, "timeStamping", true},
	{x509.ExtKeyUsageOCSPSigning, "OCSPSigning", false},
}

// KeyUsageByName returns the keyUsage bit a policy names.
func KeyUsageByName(name string) (x509.KeyUsage, bool) {
	for _, k := range keyUsageNames {
		if k.name == name && k.issuable {
			return k.bit, true
		}
	}
	return 0, false
}

// KeyUsageNames names the bits set in ku, in bit order.
func KeyUsageNames(ku x509.KeyUsage) []string {
	var out []string
	var seen x509.KeyUsage
	for _, k := range keyUsageNames {
		if ku&k.bit != 0 && seen&k.bit == 0 {
			out = append(out, k.name)
			seen |= k.bit
		}
	}
	return out
}

// ExtKeyUsageByName returns the EKU a policy names.
func ExtKeyUsageByName(name string) (x509.ExtKeyUsage, bool) {
	for _, e := range extKeyUsageNames {
		if e.name == name && e.issuable {
			return e.eku, true
		}
	}
	return 0, false
}

// ExtKeyUsageName names an EKU crypto/x509 knows ("" and false for one
// this table does not name).
func ExtKeyUsageName(eku x509.ExtKeyUsage) (string, bool) {
	for _, e := range extKeyUsageNames {
		if e.eku == eku {
			return e.name, true
		}
	}
	return "", false
}

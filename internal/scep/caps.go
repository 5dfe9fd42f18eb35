package scep

import "strings"

// Capability is a GetCACaps keyword (RFC 8894 §3.5.2).
type Capability string

// Capabilities scepd can advertise.
const (
	CapAES              Capability = "AES"
	CapDES3             Capability = "DES3"
	CapGetNextCACert    Capability = "GetNextCACert"
	CapPOSTPKIOperation Capability = "POSTPKIOperation"
	CapRenewal          Capability = "Renewal"
	CapSHA1             Capability = "SHA-1"
	CapSHA256           Capability = "SHA-256"
	CapSHA512           Capability = "SHA-512"
	CapSCEPStandard     Capability = "SCEPStandard"
)

// FormatCaps renders the GetCACaps body: one keyword a line.
func FormatCaps(caps []Capability) string {
	var b strings.Builder
	for _, c := range caps {
		b.WriteString(string(c))
		b.WriteByte('\n')
	}
	return b.String()
}

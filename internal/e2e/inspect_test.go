package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/sceptest"
)

// TestInspect: scepd inspect explains what real clients sent, decrypts with
// the recipient key, and says precisely what it cannot read.
func TestInspect(t *testing.T) {
	const dir = "../scep/testdata/captures/"
	for _, tt := range []struct {
		args []string
		want []string
		fail bool
	}{
		{[]string{"--key", dir + "micromdm-scep/testca/ca.key", dir + "micromdm-scep/PKCSReq.der"},
			[]string{"PKCSReq (messageType 19)", `"A13090761A30F66664F85D37433D2065E1112BA1"`, "(8 bytes)", "SHA-1 (signature verified)",
				"DES-EDE3-CBC", "recipient 0:", "CSR subject:", "com.apple.security.scep.", "challengePassword: none"}, false},
		{[]string{"--key", dir + "Keyfactor-ejbca-ce/derived/AdminCA1_privatesignkeyalias.key.pem", dir + "Keyfactor-ejbca-ce/MessagesUnitTest__scepclient.der"},
			[]string{"MD5 (signature verified)", "crypto/x509 cannot parse this certificate", "DES-CBC", "CN=scepclient", "present, 6 characters (not shown)"}, false},
		{[]string{dir + "jscep-jscep/scep_req2.der"}, []string{`"7XXEY-ERLPU-2JDR9"`, "AES-128-CBC"}, false},
		{[]string{dir + "smallstep-scep/CertRep.der"}, []string{"CertRep (messageType 3)", "pkiStatus:       SUCCESS", "recipientNonce"}, false},
		{[]string{dir + "smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der"}, []string{"signer certificate not found"}, true},
		{[]string{"--cert", dir + "smallstep-scep/testca2/ca2.pem", dir + "smallstep-scep/testca2/CertRep_NoCertificatesForSigners.der"},
			[]string{"CERT-PROV-CA-MSCEP-RA", "AES-128-CBC", "key transport 1.2.840.113549.1.1.7"}, false},
		{[]string{dir + "micromdm-scep/testca/ca.pem"}, []string{"certificate \"OU=CA,O=etcd-ca,C=USA\""}, false},
		{[]string{dir + "README.md"}, []string{"not a SCEP message, certificate or CSR"}, true},
	} {
		out, err := sceptest.Run(t, time.Minute, nil, "", sceptest.Binary(t), append([]string{"inspect"}, tt.args...)...)
		if (err != nil) != tt.fail {
			t.Errorf("inspect %v: err %v\n%s", tt.args, err, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("inspect %v: output lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}

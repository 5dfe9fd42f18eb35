package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

// TestMobileconfigEnrolls: `scepd profile mobileconfig --mint` on a
// dynamic profile writes a configuration profile; a real plist parser
// reads it, and micromdm's scepclient (standing in for the Apple device)
// enrolls at the URL in it with the challenge in it. The certificate
// verifies against the root payload, and the challenge works only once.
func TestMobileconfigEnrolls(t *testing.T) {
	bin := sceptest.RequireTool(t, "scepclient", "scep")
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_ALLOW_DES=1", "SCEPD_CHALLENGE_MODE=dynamic"}})
	dir := t.TempDir()
	file := filepath.Join(dir, "enroll.mobileconfig")
	if out, err := cli(t, s, nil, "profile", "mobileconfig", "--profile", "default", "--mint", "--url", s.BaseURL(),
		"--subject", "/O=scepd e2e/CN=mac-1", "--data", s.DataDir, "--out", file); err != nil {
		t.Fatalf("profile mobileconfig: %v\n%s", err, out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile file %v %v: it holds a challenge, want mode 0600", fi.Mode(), err)
	}
	b, _ := os.ReadFile(file)
	m := sceptest.PlistJSON(t, b)
	var scep map[string]any
	var rootDER []byte
	for _, p := range m["PayloadContent"].([]any) {
		p := p.(map[string]any)
		switch p["PayloadType"] {
		case "com.apple.security.scep":
			scep = p["PayloadContent"].(map[string]any)
		case "com.apple.security.root":
			rootDER, _ = base64.StdEncoding.DecodeString(p["PayloadContent"].(map[string]any)["$data"].(string))
		}
	}
	if scep == nil || rootDER == nil {
		t.Fatalf("no SCEP or root payload:\n%s", b)
	}
	url, _ := scep["URL"].(string)
	pw, _ := scep["Challenge"].(string)
	if url != s.URL("default") || len(pw) < 16 || scep["Keysize"] != float64(2048) || scep["Key Usage"] != float64(5) {
		t.Fatalf("SCEP payload %v", scep)
	}
	caPEM := writePEM(t, dir, "root.pem", rootDER)
	enroll := func(dir string) (string, error) {
		return sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", url, "-challenge", pw,
			"-private-key", filepath.Join(dir, "key.pem"), "-cn", "mac-1", "-organization", "scepd e2e")
	}
	if out, err := enroll(dir); err != nil {
		t.Fatalf("scepclient with the profile's URL and challenge: %v\n%s\n%s", err, out, s.Log())
	}
	text := opensslVerify(t, caPEM, filepath.Join(dir, "client.pem"))
	if !strings.Contains(text, "CN=mac-1") && !strings.Contains(text, "CN = mac-1") {
		t.Fatalf("issued certificate:\n%s", text)
	}
	before := len(s.Certificates())
	if out, err := enroll(t.TempDir()); err == nil {
		t.Fatalf("the profile's one-time challenge enrolled a second device:\n%s", out)
	}
	if len(s.Certificates()) != before {
		t.Fatal("a certificate was stored for a used challenge")
	}

	// Signed with an operator's certificate: openssl verifies the CMS
	// signature and its content is a profile with a fresh challenge.
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	signCert, signKey := filepath.Join(dir, "signer.pem"), filepath.Join(dir, "signer.key")
	if out, err := sceptest.Run(t, 30*time.Second, nil, "", openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", signKey, "-out", signCert, "-subj", "/CN=Profile Signer", "-days", "1"); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	signed := filepath.Join(dir, "signed.mobileconfig")
	if out, err := cli(t, s, nil, "profile", "mobileconfig", "--profile", "default", "--mint", "--url", s.BaseURL(),
		"--sign-cert", signCert, "--sign-key", signKey, "--data", s.DataDir, "--out", signed); err != nil {
		t.Fatalf("profile mobileconfig --sign-cert: %v\n%s", err, out)
	}
	content := filepath.Join(dir, "signed-content")
	if out, err := sceptest.Run(t, 30*time.Second, nil, "", openssl, "cms", "-verify", "-inform", "DER", "-in", signed,
		"-CAfile", signCert, "-purpose", "any", "-out", content); err != nil {
		t.Fatalf("openssl cms -verify of the signed profile: %v\n%s", err, out)
	}
	cb, _ := os.ReadFile(content)
	inner := sceptest.PlistJSON(t, cb)
	last := inner["PayloadContent"].([]any)[len(inner["PayloadContent"].([]any))-1].(map[string]any)
	if last["PayloadType"] != "com.apple.security.scep" || last["PayloadContent"].(map[string]any)["Challenge"] == pw {
		t.Fatalf("signed profile's SCEP payload: %v (want a fresh challenge)", last)
	}

	// A static profile file needs the challenge given; a dynamic one refuses it.
	if out, err := cli(t, s, nil, "profile", "mobileconfig", "--profile", "default", "--url", s.BaseURL(), "--data", s.DataDir); err == nil || !strings.Contains(out, "--mint") {
		t.Fatalf("mobileconfig on a dynamic profile without --mint: %v\n%s", err, out)
	}
}

// TestMobileconfigRAMode: for a profile in RA mode the root payload is the
// upstream's CA, which issues the devices' certificates (as GetCACert
// hands it out), not the profile's RA issuer, which issues nothing to
// devices and which no profile may name as its CA (`profile apply`
// refuses it as ca and as rollover.next_ca).
func TestMobileconfigRAMode(t *testing.T) {
	c := startRAChain(t, "", "", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "legacy.mobileconfig")
	if out, err := cli(t, c.front, []string{"E2E_SHARED=" + shared}, "profile", "mobileconfig", "--profile", "legacy", "--challenge-env", "E2E_SHARED",
		"--url", c.front.BaseURL(), "--data", c.front.DataDir, "--out", file); err != nil {
		t.Fatalf("profile mobileconfig: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	var roots, others [][]byte
	for _, p := range sceptest.PlistJSON(t, b)["PayloadContent"].([]any) {
		p := p.(map[string]any)
		if p["PayloadType"] == "com.apple.security.scep" {
			continue
		}
		der, _ := base64.StdEncoding.DecodeString(p["PayloadContent"].(map[string]any)["$data"].(string))
		if p["PayloadType"] == "com.apple.security.root" {
			roots = append(roots, der)
		} else {
			others = append(others, der)
		}
	}
	if len(roots) != 1 || len(others) != 0 {
		t.Fatalf("%d root and %d other certificate payloads, want the upstream's root alone", len(roots), len(others))
	}
	root, err := x509.ParseCertificate(roots[0])
	if err != nil || !root.Equal(c.upCA) {
		t.Fatalf("root payload %v (%v), want the upstream's CA %v (not the RA issuer)", root.Subject, err, c.upCA.Subject)
	}
	// What a device gets through the front chains to that root.
	certs, err := client.New(c.url).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: subjectCN("mac-ra"), Challenge: shared,
		Cipher: cms.AES128, Digest: crypto.SHA256, Recipient: c.ra})
	if err != nil {
		t.Fatalf("enroll through the front: %v", err)
	}
	checkChain(t, certs[0], root, nil)

	if out, err := cli(t, c.front, nil, "ca", "create-root", "--id", "devices", "--subject", "CN=Front Devices", "--data", c.front.DataDir); err != nil {
		t.Fatalf("ca create-root: %v\n%s", err, out)
	}
	for _, tc := range []struct{ field, yaml string }{
		{"ca", "id: devices\nca: legacy-ra\nchallenge: {mode: dynamic}\n"},
		{"rollover.next_ca", "id: devices\nca: devices\nchallenge: {mode: dynamic}\nrollover: {next_ca: legacy-ra, at: \"2030-01-01T00:00:00Z\"}\n"},
	} {
		spec := filepath.Join(dir, "devices.yaml")
		os.WriteFile(spec, []byte(tc.yaml), 0o600)
		out, err := cli(t, c.front, nil, "profile", "apply", "--file", spec, "--data", c.front.DataDir)
		if err == nil || !strings.Contains(out, tc.field+`: CA "legacy-ra" is the RA issuer of profile legacy`) {
			t.Fatalf("profile apply naming the RA issuer as %s: %v\n%s", tc.field, err, out)
		}
	}
}

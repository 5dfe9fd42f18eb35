package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepd/scepd/internal/client"
	"github.com/scepd/scepd/internal/scep"
	"github.com/scepd/scepd/internal/scep/cms"
	"github.com/scepd/scepd/internal/sceptest"
)

const operatorsConfig = `
public_url: http://pki.example.test
default_profile: laptops
cas:
  - id: root
    create: {subject: "CN=E2E Root CA,O=E2E", key_type: ecdsa-p256}
  - id: devices
    create: {parent: root, subject: "CN=E2E Devices CA,O=E2E", key_type: rsa-2048, allow_ca_mode: true}
profiles:
  - id: laptops
    ca: devices
    challenge: {password_env: E2E_LAPTOP_CHALLENGE}
    policy:
      subject: {allowed: [CN]}
      sans: {dns: ["*.laptops.e2e.test"]}
      ext_key_usage: [clientAuth, "1.3.6.1.4.1.99999.1.1"]
      validity: 720h
  - id: routers
    ca: root
    allow_des: true
    include_ca_cert: false
    challenge: {password_env: E2E_ROUTER_CHALLENGE}
    policy:
      subject: {template: ["CN={{.CSR.Subject.CommonName}}", "OU=Network", "O=E2E"]}
      ext_key_usage: [clientAuth, ipsecIKE]
  - id: camode
    ca: devices
    ca_mode: true
    challenge: {password_env: E2E_LAPTOP_CHALLENGE}
`

const (
	laptopChallenge = "laptop-challenge-e2e"
	routerChallenge = "router-challenge-e2e"
)

func startConfigured(t *testing.T, extraEnv ...string) *sceptest.Server {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scepd.yaml")
	if err := os.WriteFile(cfg, []byte(operatorsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return sceptest.Start(t, sceptest.Options{
		DataDir: filepath.Join(dir, "data"),
		Env:     append([]string{"E2E_LAPTOP_CHALLENGE=" + laptopChallenge, "E2E_ROUTER_CHALLENGE=" + routerChallenge}, extraEnv...),
		Args:    []string{"--config", cfg},
	})
}

func caCerts(t *testing.T, s *sceptest.Server, profile string) []*x509.Certificate {
	t.Helper()
	certs, err := client.New(s.URL(profile)).GetCACert(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// TestConfiguredProfiles: three profiles from a config file, each with its
// CA and policy, enrolled by real clients and checked for exactly what the
// policy says.
func TestConfiguredProfiles(t *testing.T) {
	s := startConfigured(t)
	laptopsCA := caCerts(t, s, "laptops")
	routersCA := caCerts(t, s, "routers")
	camodeCA := caCerts(t, s, "camode")
	if len(laptopsCA) != 3 || laptopsCA[1].Subject.CommonName != "E2E Devices CA" || laptopsCA[2].Subject.CommonName != "E2E Root CA" {
		t.Fatalf("laptops GetCACert: want RA, intermediate, root; got %d certificates", len(laptopsCA))
	}
	// include_ca_cert: false leaves the CA out of CertReps (Juniper), not
	// out of GetCACert, where clients authenticate the CA (Windows' and
	// Cisco's thumbprint checks).
	if len(routersCA) != 2 || routersCA[0].IsCA || routersCA[1].Subject.CommonName != "E2E Root CA" {
		t.Fatalf("routers (include_ca_cert: false) GetCACert: want the RA and its CA, got %d certificates", len(routersCA))
	}
	if certs, err := client.New(s.URL("routers")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "edge-0"},
		Challenge: routerChallenge, Cipher: cms.AES128, Digest: crypto.SHA256}); err != nil || len(certs) != 1 || certs[0].IsCA {
		t.Fatalf("routers CertRep: %d certificates, %v; want the issued one alone", len(certs), err)
	}
	if certs, err := client.New(s.URL("laptops")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "lap-0"},
		Challenge: laptopChallenge, Cipher: cms.AES128, Digest: crypto.SHA256}); err != nil || len(certs) != 3 {
		t.Fatalf("laptops CertRep: %d certificates, %v; want the issued one and its chain", len(certs), err)
	}
	if len(camodeCA) != 2 || camodeCA[0].Subject.CommonName != "E2E Devices CA" {
		t.Fatalf("camode GetCACert: want the CA and its root, no RA; got %d", len(camodeCA))
	}
	root := laptopsCA[2]
	chainFile := filepath.Join(t.TempDir(), "chain.pem")
	os.WriteFile(chainFile, append(pemOf(laptopsCA[1].Raw), pemOf(root.Raw)...), 0o644)

	t.Run("laptops with certmonger", func(t *testing.T) {
		sceptest.RequireTool(t, "/usr/lib/certmonger/scep-submit", "certmonger")
		cm := sceptest.StartCertmonger(t)
		if out, err := cm.Getcert("add-scep-ca", "-c", "laptops", "-u", s.URL("laptops"), "-N", chainFile); err != nil {
			t.Fatalf("add-scep-ca: %v\n%s", err, out)
		}
		key, cert := cm.KeyAndCertPaths(t, "laptop")
		out, err := cm.Getcert("request", "-c", "laptops", "-k", key, "-f", cert, "-N", "CN=lap-7,O=Dropped", "-D", "lap-7.laptops.e2e.test", "-D", "lap-7.evil.example", "-L", laptopChallenge, "-w", "-v")
		if err != nil {
			t.Fatalf("getcert request: %v\n%s\n%s", err, out, s.Log())
		}
		b, _ := os.ReadFile(cert)
		c := parsePEM(t, b)
		checkChain(t, c, root, laptopsCA[1])
		if c.Subject.String() != "CN=lap-7" {
			t.Errorf("subject %q: O must be dropped (allowed: [CN])", c.Subject)
		}
		if len(c.DNSNames) != 1 || c.DNSNames[0] != "lap-7.laptops.e2e.test" {
			t.Errorf("SANs %v: only *.laptops.e2e.test may pass", c.DNSNames)
		}
		attest := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1, 1}
		if len(c.UnknownExtKeyUsage) != 1 || !c.UnknownExtKeyUsage[0].Equal(attest) || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Errorf("EKUs %v %v: want clientAuth and the custom OID", c.ExtKeyUsage, c.UnknownExtKeyUsage)
		}
		if d := c.NotAfter.Sub(c.NotBefore); d != 720*time.Hour+5*time.Minute {
			t.Errorf("validity %v, want 720h (+5m backdate)", d)
		}
		if len(c.IssuingCertificateURL) != 1 || c.IssuingCertificateURL[0] != "http://pki.example.test/ca/devices.crt" {
			t.Errorf("AIA %v", c.IssuingCertificateURL)
		}
	})

	t.Run("routers with micromdm scepclient", func(t *testing.T) {
		bin := sceptest.RequireTool(t, "scepclient", "scep")
		fp := sha256.Sum256(routersCA[0].Raw)
		dir := t.TempDir()
		out, err := sceptest.Run(t, time.Minute, nil, dir, bin, "-server-url", s.URL("routers"), "-private-key", filepath.Join(dir, "key.pem"),
			"-challenge", routerChallenge, "-cn", "edge-1", "-organization", "Ignored", "-ca-fingerprint", hex.EncodeToString(fp[:]))
		if err != nil {
			t.Fatalf("scepclient: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "client.pem"))
		c := parsePEM(t, b)
		checkChain(t, c, root, nil)
		if c.Subject.String() != "CN=edge-1,OU=Network,O=E2E" {
			t.Errorf("subject %q, want the template's", c.Subject)
		}
		if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[1] != x509.ExtKeyUsageIPSECEndSystem {
			t.Errorf("EKUs %v", c.ExtKeyUsage)
		}
		if d := c.NotAfter.Sub(c.NotBefore); d < 365*24*time.Hour {
			t.Errorf("validity %v, want the default year", d)
		}
		// The laptops challenge does not open the routers profile.
		dir2 := t.TempDir()
		if out, err := sceptest.Run(t, time.Minute, nil, dir2, bin, "-server-url", s.URL("routers"), "-private-key", filepath.Join(dir2, "key.pem"),
			"-challenge", laptopChallenge, "-cn", "edge-2", "-ca-fingerprint", hex.EncodeToString(fp[:])); err == nil {
			t.Fatalf("another profile's challenge was accepted:\n%s", out)
		}
	})

	t.Run("CA mode", func(t *testing.T) {
		certs, err := client.New(s.URL("camode")).Enroll(context.Background(), client.Enrollment{
			Key: newKey(t), Subject: pkix.Name{CommonName: "cam-1"}, Challenge: laptopChallenge, Cipher: cms.AES256, Digest: crypto.SHA256,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkChain(t, certs[0], root, laptopsCA[1])
		// RFC 8894 §2.1.2: a CA that decrypts SCEP messages itself carries
		// keyEncipherment beside digitalSignature; clients (sscep, Apple)
		// choose the recipient by these bits. Our client falls back to
		// any RSA certificate, so the enrollment above does not prove it.
		want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		if ku := camodeCA[0].KeyUsage; ku != want {
			t.Errorf("CA-mode CA keyUsage %b, want exactly digitalSignature, keyEncipherment, keyCertSign, cRLSign (%b)", ku, want)
		}
	})

	t.Run("single DES only where allowed", func(t *testing.T) {
		_, err := client.New(s.URL("laptops")).Enroll(context.Background(), client.Enrollment{
			Key: newKey(t), Subject: pkix.Name{CommonName: "old"}, Challenge: laptopChallenge, Cipher: cms.DES, Digest: crypto.SHA1,
		})
		if err == nil || !strings.Contains(err.Error(), "badAlg") {
			t.Fatalf("laptops accepted single DES: %v", err)
		}
	})

	t.Run("CA downloads", func(t *testing.T) {
		// Okta takes the intermediate (and a relying party the root) as
		// PEM or DER: each format of each CA is that CA's certificate.
		get := func(path, ctype string) []byte {
			t.Helper()
			resp, err := http.Get(s.BaseURL() + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype {
				t.Fatalf("%s: %d %s, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
			}
			return b
		}
		for id, want := range map[string]*x509.Certificate{"devices": laptopsCA[1], "root": root} {
			for _, ext := range []string{"crt", "der"} {
				if b := get("/ca/"+id+"."+ext, "application/pkix-cert"); !bytes.Equal(b, want.Raw) {
					t.Errorf("/ca/%s.%s is not the %s CA's DER certificate", id, ext, id)
				}
			}
			b := get("/ca/"+id+".pem", "application/x-pem-file")
			block, rest := pem.Decode(b)
			if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
				t.Errorf("/ca/%s.pem: want one CERTIFICATE block, got %q", id, truncate(b))
			} else if !bytes.Equal(block.Bytes, want.Raw) {
				t.Errorf("/ca/%s.pem is not the certificate /ca/%s.crt serves", id, id)
			}
		}
		if resp, _ := http.Get(s.BaseURL() + "/ca/nope.crt"); resp.StatusCode != 404 {
			t.Fatalf("unknown CA: %d", resp.StatusCode)
		}
	})

	t.Run("message= on GetCACert and GetCACaps is ignored", func(t *testing.T) {
		// Every client puts something in message: Apple its payload name,
		// sscep "CAIdentifier", Cisco its trustpoint, Windows "default",
		// MobileIron a fixed identifier. On a profile other than the
		// default one, none of it may change the answer, not even the
		// name of another profile.
		fetch := func(op, query string) (string, []byte) {
			t.Helper()
			resp, err := http.Get(s.URL("routers") + "?operation=" + op + query)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s%s: HTTP %d %q", op, query, resp.StatusCode, truncate(b))
			}
			return resp.Header.Get("Content-Type"), b
		}
		for _, op := range []string{"GetCACert", "GetCACaps"} {
			ctype, body := fetch(op, "")
			for _, q := range []string{"&message=CAIdentifier", "&message=My%20SCEP%20Payload", "&message=ROUTERS-TP", "&message=default", "&message=laptops", "&message="} {
				if ct, b := fetch(op, q); ct != ctype || !bytes.Equal(b, body) {
					t.Errorf("routers %s with %s: %q %q, without message: %q %q", op, q, ct, truncate(b), ctype, truncate(body))
				}
			}
			if op == "GetCACert" {
				if ctype != "application/x-x509-ca-ra-cert" {
					t.Errorf("GetCACert Content-Type %q", ctype)
				}
				certs, err := scep.DegenerateCertificates(body)
				if err != nil || len(certs) != len(routersCA) || !bytes.Equal(certs[0], routersCA[0].Raw) {
					t.Errorf("routers GetCACert is not the routers RA and CA: %d certificates, %v", len(certs), err)
				}
			} else if !strings.HasPrefix(ctype, "text/plain") || !strings.Contains(string(body), "POSTPKIOperation") {
				t.Errorf("GetCACaps: %q %q", ctype, body)
			}
		}
	})

	t.Run("compatibility URL serves the default profile", func(t *testing.T) {
		certs, err := client.New(s.BaseURL() + "/cgi-bin/pkiclient.exe").GetCACert(context.Background())
		if err != nil || len(certs) != 3 || !certs[0].Equal(laptopsCA[0]) {
			t.Fatalf("default_profile laptops: %v", err)
		}
	})
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parsePEM(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkChain(t *testing.T, c, root, inter *x509.Certificate) {
	t.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	if inter != nil {
		inters.AddCert(inter)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("%s does not chain to its CA: %v", c.Subject, err)
	}
}

// api calls the REST API with a token and decodes the JSON answer.
func api(t *testing.T, s *sceptest.Server, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.BaseURL()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out
}

func cli(t *testing.T, s *sceptest.Server, env []string, args ...string) (string, error) {
	t.Helper()
	return sceptest.Run(t, time.Minute, env, "", sceptest.Binary(t), args...)
}

// TestAPIRoles drives the REST API with a token of each role: what each may
// do, what it may not (403), no token (401), a revoked token (401), and the
// config file's authority over its profiles (409).
func TestAPIRoles(t *testing.T) {
	s := startConfigured(t)
	tokens := map[string]string{}
	for _, role := range []string{"admin", "operator", "auditor"} {
		out, err := cli(t, s, nil, "token", "create", "--role", role, "--name", role, "--data", s.DataDir)
		if err != nil {
			t.Fatalf("token create: %v\n%s", err, out)
		}
		tokens[role] = strings.TrimSpace(out)
	}
	out, err := cli(t, s, nil, "token", "create", "--role", "mdm", "--profile", "routers", "--name", "jamf", "--data", s.DataDir, "-o", "json")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	var mdm struct{ Token, ID string }
	json.Unmarshal([]byte(out), &mdm)
	tokens["mdm"] = mdm.Token

	// An API-owned profile with dynamic challenges, created by the admin.
	code, body := api(t, s, tokens["admin"], "POST", "/api/v1/profiles", map[string]any{
		"id": "kiosks", "ca": "root", "challenge": map[string]any{"mode": "dynamic", "max_pending": 2},
		"policy": map[string]any{"validity": "48h"},
	})
	if code != 200 || body["source"] != "api" {
		t.Fatalf("admin creates a profile: %d %v", code, body)
	}
	// The running server serves it at once.
	if certs := caCerts(t, s, "kiosks"); len(certs) != 2 {
		t.Fatalf("new profile's GetCACert: %d certificates", len(certs))
	}
	for _, tt := range []struct {
		role, method, path string
		body               any
		want               int
	}{
		{"", "GET", "/api/v1/cas", nil, 401},
		{"admin", "GET", "/api/v1/cas", nil, 200},
		{"admin", "POST", "/api/v1/cas", map[string]any{"id": "extra", "create": map[string]any{"subject": "CN=Extra CA", "parent": "root"}}, 201},
		{"admin", "POST", "/api/v1/cas", map[string]any{"id": "extra", "create": map[string]any{"subject": "CN=Extra CA"}}, 409},
		{"admin", "POST", "/api/v1/cas", map[string]any{"id": "Bad ID", "create": map[string]any{"subject": "CN=x"}}, 400},
		{"admin", "PUT", "/api/v1/profiles/laptops", map[string]any{"id": "laptops", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}}, 409},
		{"admin", "POST", "/api/v1/profiles", map[string]any{"id": "x", "ca": "nope", "challenge": map[string]any{"mode": "dynamic"}}, 400},
		{"admin", "POST", "/api/v1/profiles", map[string]any{"id": "x", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}, "unknown": 1}, 400},
		{"admin", "POST", "/api/v1/profiles", map[string]any{"id": "x", "ca": "root", "ca_mode": true, "challenge": map[string]any{"mode": "dynamic"}}, 400},
		{"operator", "GET", "/api/v1/certificates?profile=laptops", nil, 200},
		{"operator", "POST", "/api/v1/profiles/kiosks/challenges", nil, 201},
		{"operator", "POST", "/api/v1/profiles", map[string]any{"id": "y", "ca": "root", "challenge": map[string]any{"mode": "dynamic"}}, 403},
		{"operator", "GET", "/api/v1/tokens", nil, 403},
		{"operator", "GET", "/api/v1/audit", nil, 403},
		{"auditor", "GET", "/api/v1/tokens", nil, 200},
		{"auditor", "GET", "/api/v1/audit", nil, 200},
		{"auditor", "GET", "/api/v1/profiles/laptops", nil, 200},
		{"auditor", "POST", "/api/v1/profiles/kiosks/challenges", nil, 403},
		{"auditor", "POST", "/api/v1/tokens", map[string]any{"role": "admin"}, 403},
		{"mdm", "POST", "/api/v1/profiles/kiosks/challenges", nil, 403},
		{"mdm", "GET", "/api/v1/certificates", nil, 403},
		{"mdm", "GET", "/api/v1/cas", nil, 403},
		{"mdm", "POST", "/api/v1/profiles/routers/challenges", nil, 400}, // allowed, but routers has a static challenge
		{"admin", "POST", "/api/v1/profiles/kiosks/challenges", nil, 201},
		{"admin", "POST", "/api/v1/profiles/kiosks/challenges", nil, 429}, // max_pending 2 reached
		{"admin", "GET", "/api/v1/profiles/nope", nil, 404},
		{"admin", "GET", "/api/v1/certificates?expiring_before=tomorrow", nil, 400},
	} {
		code, body := api(t, s, tokens[tt.role], tt.method, tt.path, tt.body)
		if code != tt.want {
			t.Errorf("%s %s %s: %d %v, want %d", tt.role, tt.method, tt.path, code, body, tt.want)
		}
		if code >= 400 {
			if e, ok := body["error"].(map[string]any); !ok || e["code"] == "" {
				t.Errorf("%s %s %s: error body %v has no code", tt.role, tt.method, tt.path, body)
			}
		}
	}

	// The mdm token scoped to a dynamic profile redeems its challenge once.
	code, _ = api(t, s, tokens["admin"], "PUT", "/api/v1/profiles/kiosks", map[string]any{"id": "kiosks", "ca": "root",
		"challenge": map[string]any{"mode": "dynamic", "max_pending": 50}, "policy": map[string]any{"validity": "48h"}})
	if code != 200 {
		t.Fatalf("raising the cap: %d", code)
	}
	out, err = cli(t, s, []string{"SCEPD_TOKEN=" + tokens["admin"]}, "token", "create", "--role", "mdm", "--profile", "kiosks", "--server", s.BaseURL())
	if err != nil {
		t.Fatalf("token create over the API: %v\n%s", err, out)
	}
	kioskMDM := strings.TrimSpace(out)
	req, _ := http.NewRequest("POST", s.BaseURL()+"/api/v1/profiles/kiosks/challenges", nil)
	req.Header.Set("Authorization", "Bearer "+kioskMDM)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 && resp.StatusCode != 200 || len(secret) < 30 {
		t.Fatalf("mdm challenge as text: %d %q", resp.StatusCode, secret)
	}
	e := client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "kiosk-1"}, Challenge: string(secret), Cipher: cms.AES128, Digest: crypto.SHA256}
	certs, err := client.New(s.URL("kiosks")).Enroll(context.Background(), e)
	if err != nil {
		t.Fatalf("enrolling with the minted challenge: %v", err)
	}
	if d := certs[0].NotAfter.Sub(certs[0].NotBefore); d != 48*time.Hour+5*time.Minute {
		t.Errorf("kiosk validity %v, want 48h", d)
	}
	e.Key, e.Subject = newKey(t), pkix.Name{CommonName: "kiosk-2"}
	if _, err := client.New(s.URL("kiosks")).Enroll(context.Background(), e); err == nil {
		t.Fatal("a one-time challenge was accepted twice")
	}

	// Downloads through the API.
	out, err = cli(t, s, []string{"SCEPD_TOKEN=" + tokens["auditor"]}, "ca", "export", "devices", "--format", "der", "--server", s.BaseURL())
	if err != nil || !bytes.Equal([]byte(out), caCerts(t, s, "laptops")[1].Raw) {
		t.Fatalf("ca export --format der over the API: %v", err)
	}
	out, err = cli(t, s, []string{"SCEPD_TOKEN=" + tokens["operator"]}, "cert", "list", "--profile", "kiosks", "--server", s.BaseURL(), "-o", "json")
	if err != nil || !strings.Contains(out, "CN=kiosk-1") {
		t.Fatalf("cert list over the API: %v\n%s", err, out)
	}
	serial := certs[0].SerialNumber.Text(16)
	out, err = cli(t, s, []string{"SCEPD_TOKEN=" + tokens["operator"]}, "cert", "export", serial, "--server", s.BaseURL())
	if err != nil || !bytes.Equal(parsePEM(t, []byte(out)).Raw, certs[0].Raw) {
		t.Fatalf("cert export over the API: %v", err)
	}

	// Revocation of a token takes effect at once.
	if out, err := cli(t, s, nil, "token", "revoke", mdm.ID, "--data", s.DataDir); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	if code, _ := api(t, s, tokens["mdm"], "POST", "/api/v1/profiles/routers/challenges", nil); code != 401 {
		t.Fatalf("revoked token: %d, want 401", code)
	}

	// Every mutation is in the audit log with its actor; no secret is.
	code, _ = api(t, s, tokens["auditor"], "GET", "/api/v1/audit?limit=200", nil)
	if code != 200 {
		t.Fatal(code)
	}
	resp, _ = func() (*http.Response, error) {
		r, _ := http.NewRequest("GET", s.BaseURL()+"/api/v1/audit?limit=500", nil)
		r.Header.Set("Authorization", "Bearer "+tokens["auditor"])
		return http.DefaultClient.Do(r)
	}()
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"profile.create", "ca.create", "challenge.create", "token.create", "token.revoke", "(admin)", "(jamf)", "enroll"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("audit log lacks %q", want)
		}
	}
	for role, tok := range tokens {
		if strings.Contains(string(raw)+s.Log(), tok[len(tok)-20:]) {
			t.Errorf("the %s token's secret appears in the audit log or the server log", role)
		}
	}
	if strings.Contains(string(raw)+s.Log(), string(secret)) || strings.Contains(s.Log(), laptopChallenge) {
		t.Error("a challenge appears in the audit log or the server log")
	}
}

// TestOperatorCLI: config validation, the policy dry run on an openssl
// CSR, and the local CLI.
func TestOperatorCLI(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("cas: [{id: r, create: {subject: 'CN=r', key_type: dsa}}]\nprofiles: [{id: p, ca: r, challenge: {mode: magic}}]\n"), 0o600)
	out, err := cli(t, nil, nil, "config", "validate", bad)
	if err == nil || !strings.Contains(out, "cas[0].create.key_type") || !strings.Contains(out, "profiles[0].challenge.mode") {
		t.Fatalf("config validate of a bad file: %v\n%s", err, out)
	}
	if out, err := cli(t, nil, nil, "config", "validate", "../../scepd.example.yaml"); err != nil {
		t.Fatalf("the example config: %v\n%s", err, out)
	}

	s := startConfigured(t)
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	for name, subj := range map[string]string{"ok": "/CN=lap-9", "nocn": "/O=NoCN"} {
		if out, err := sceptest.Run(t, time.Minute, nil, dir, openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", name+".key",
			"-subj", subj, "-addext", "subjectAltName=DNS:lap-9.laptops.e2e.test,DNS:other.example", "-out", name+".csr"); err != nil {
			t.Fatalf("openssl req: %v\n%s", err, out)
		}
	}
	out, err = cli(t, s, nil, "policy", "test", "--profile", "laptops", "--data", s.DataDir, filepath.Join(dir, "ok.csr"))
	if err != nil || !strings.Contains(out, "would issue: CN=lap-9, SANs DNS:lap-9.laptops.e2e.test,") || !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Fatalf("policy test: %v\n%s", err, out)
	}
	out, err = cli(t, s, nil, "policy", "test", "--profile", "laptops", "--data", s.DataDir, filepath.Join(dir, "nocn.csr"))
	if err == nil || !strings.Contains(out, "refused: refused by policy: the subject has no CN") {
		t.Fatalf("policy test of a CSR without CN: %v\n%s", err, out)
	}
	if len(s.Certificates()) != 0 {
		t.Fatal("a dry run stored a certificate")
	}
	out, err = cli(t, s, nil, "ca", "list", "--data", s.DataDir)
	if err != nil || !strings.Contains(out, "devices") || !strings.Contains(out, "CN=E2E Root CA,O=E2E") {
		t.Fatalf("ca list: %v\n%s", err, out)
	}
	out, err = cli(t, s, nil, "profile", "list", "--data", s.DataDir, "-o", "json")
	var ps []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 3 {
		t.Fatalf("profile list -o json: %v\n%s", err, out)
	}
}

// TestEncryptedKeys: with SCEPD_KEY_PASSPHRASE every key file is
// encrypted, and a restart without it is refused with a clear message.
func TestEncryptedKeys(t *testing.T) {
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge, "SCEPD_KEY_PASSPHRASE=a long passphrase"}})
	enrollOK(t, s, client.Enrollment{Subject: pkix.Name{CommonName: "enc"}, Cipher: cms.AES256, Digest: crypto.SHA256})
	files, _ := filepath.Glob(filepath.Join(s.DataDir, "*", "*.key"))
	more, _ := filepath.Glob(filepath.Join(s.DataDir, "*", "*", "*.key"))
	files = append(files, more...)
	if len(files) != 2 {
		t.Fatalf("key files %v", files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
			t.Errorf("%s is not encrypted", f)
		}
	}
	s.Stop()
	out, err := sceptest.Run(t, 30*time.Second, []string{"SCEPD_CHALLENGE=" + challenge}, "", sceptest.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", s.DataDir)
	if err == nil || !strings.Contains(out, "no passphrase was given") {
		t.Fatalf("restart without the passphrase: %v\n%s", err, out)
	}
}

// TestImportAndAdminListener: a CA made by openssl imported through the
// CLI (PEM and PKCS#12), and the API on its own TLS listener.
func TestImportAndAdminListener(t *testing.T) {
	openssl := sceptest.RequireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := sceptest.Run(t, time.Minute, nil, dir, openssl, args...); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ext.key", "-out", "ext.pem", "-days", "365", "-subj", "/CN=External CA/O=Elsewhere",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	run("pkcs12", "-export", "-inkey", "ext.key", "-in", "ext.pem", "-out", "ext.p12", "-passout", "pass:p12-pass")
	run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "nocrl.key", "-out", "nocrl.pem", "-days", "365", "-subj", "/CN=No CRL CA",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
	run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tls.key", "-out", "tls.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
		"-addext", "subjectAltName=IP:127.0.0.1")
	os.Chmod(filepath.Join(dir, "ext.key"), 0o600)
	os.Chmod(filepath.Join(dir, "nocrl.key"), 0o600)

	adminAddr := sceptest.FreeAddr(t)
	s := sceptest.Start(t, sceptest.Options{Env: []string{"SCEPD_CHALLENGE=" + challenge},
		Args: []string{"--admin-addr", adminAddr, "--admin-tls-cert", filepath.Join(dir, "tls.pem"), "--admin-tls-key", filepath.Join(dir, "tls.key")}})
	if out, err := cli(t, s, nil, "ca", "import", "--id", "ext-pem", "--cert", filepath.Join(dir, "ext.pem"), "--key", filepath.Join(dir, "ext.key"), "--data", s.DataDir); err != nil {
		t.Fatalf("ca import (PEM): %v\n%s", err, out)
	}
	if out, err := cli(t, s, []string{"SCEPD_PKCS12_PASSWORD=p12-pass"}, "ca", "import", "--id", "ext-p12", "--pkcs12", filepath.Join(dir, "ext.p12"), "--data", s.DataDir); err != nil {
		t.Fatalf("ca import (PKCS#12): %v\n%s", err, out)
	}
	if out, err := cli(t, s, []string{"SCEPD_PKCS12_PASSWORD=wrong"}, "ca", "import", "--id", "ext-bad", "--pkcs12", filepath.Join(dir, "ext.p12"), "--data", s.DataDir); err == nil {
		t.Fatalf("a PKCS#12 with the wrong password was imported:\n%s", out)
	}
	// A CA whose keyUsage lacks cRLSign would sign CRLs relying parties reject.
	if out, err := cli(t, s, nil, "ca", "import", "--id", "ext-nocrl", "--cert", filepath.Join(dir, "nocrl.pem"), "--key", filepath.Join(dir, "nocrl.key"), "--data", s.DataDir); err == nil ||
		!strings.Contains(out, "key usage lacks cRLSign: relying parties would reject the CRLs") {
		t.Fatalf("ca import of a CA without cRLSign: %v, want refused naming cRLSign\n%s", err, out)
	}
	tok, err := cli(t, s, nil, "token", "create", "--role", "admin", "--data", s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)

	// The API answers on the admin listener over TLS, not on the SCEP one.
	if code, _ := api(t, s, tok, "GET", "/api/v1/cas", nil); code != 404 {
		t.Fatalf("API on the SCEP listener: %d, want 404", code)
	}
	out, err := sceptest.Run(t, time.Minute, []string{"SCEPD_TOKEN=" + tok, "SSL_CERT_FILE=" + filepath.Join(dir, "tls.pem")}, "", sceptest.Binary(t),
		"ca", "list", "--server", "https://"+adminAddr, "-o", "json")
	if err != nil || !strings.Contains(out, `"ext-pem"`) || !strings.Contains(out, `"ext-p12"`) || !strings.Contains(out, "CN=External CA,O=Elsewhere") {
		t.Fatalf("ca list over TLS: %v\n%s", err, out)
	}
	// A profile on the imported CA issues certificates chained to it.
	body := map[string]any{"id": "ext", "ca": "ext-pem", "challenge": map[string]any{"password": "ext-profile-secret"}}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "https://"+adminAddr+"/api/v1/profiles", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	pool := x509.NewCertPool()
	tlsPEM, _ := os.ReadFile(filepath.Join(dir, "tls.pem"))
	pool.AppendCertsFromPEM(tlsPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}}
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create profile over TLS: %v %v", err, resp)
	}
	resp.Body.Close()
	certs, err := client.New(s.URL("ext")).Enroll(context.Background(), client.Enrollment{Key: newKey(t), Subject: pkix.Name{CommonName: "ext-dev"},
		Challenge: "ext-profile-secret", Cipher: cms.AES128, Digest: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	extPEM, _ := os.ReadFile(filepath.Join(dir, "ext.pem"))
	checkChain(t, certs[0], parsePEM(t, extPEM), nil)
	if strings.Contains(s.Log(), "ext-profile-secret") {
		t.Error("the profile's challenge appears in the log")
	}
}

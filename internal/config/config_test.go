package config

import (
	"strings"
	"testing"
)

func TestExampleFileIsValid(t *testing.T) {
	f, err := Load("../../scepd.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("the reference file does not validate:\n%v", err)
	}
	if len(f.CAs) != 2 || len(f.Profiles) != 2 || f.Profiles[0].Policy.SANs.DNS[0] != "*.laptops.corp.example" {
		t.Fatalf("decoded %+v", f)
	}
}

func TestStrictDecoding(t *testing.T) {
	for _, doc := range []string{
		"listen: {adr: ':1'}",
		"profiles: [{id: a, ca: b, challange: {mode: static}}]",
		"profiles: [{id: a, ca: b, policy: {validty: 1h}}]",
		"profiles: [{id: a, ca: b, policy: {validity: forever}}]",
		"profiles: [{id: a, ca: b, challenge: {password: x}}]", // the secret itself is not accepted in a file
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("Parse(%q) accepted an unknown or malformed key", doc)
		}
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	doc := `
public_url: pki.example.com
database: mysql://x
listen: {admin_tls_cert: a.pem, trusted_proxies: [10.0.0.0/8, "10.0.0.0/33", proxy.example]}
console: {idle_timeout: -1m}
default_profile: nope
cas:
  - id: Root
    create: {subject: "CN=x", key_type: dsa-1024}
  - id: sub
    create: {parent: missing, subject: "XX=y"}
  - id: both
    create: {subject: "CN=x"}
    import: {cert: a, key: b}
  - id: half
    import: {cert: a}
profiles:
  - id: a
    ca: unknown
    challenge: {mode: static}
  - id: a
    ca: sub
    ra_key_type: ecdsa-p256
    challenge: {mode: magic}
  - id: b
    ca: sub
    challenge: {mode: dynamic, password_env: X, ttl: 1ms}
    policy: {validity: 1m, ext_key_usage: [bogus]}
    expiry_notices: [1s]
events:
  expiry_scan: 1ms
  sinks:
    - {name: Hook, type: webhook, url: "ftp://x", events: [certificate.exploded]}
    - {name: log, type: log, url: "http://x"}
    - {name: log, type: pager}
`
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	err = f.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken file")
	}
	for _, want := range []string{
		"public_url:", "database:", "listen:", "default_profile:",
		"listen.trusted_proxies[1]:", "listen.trusted_proxies[2]:", "console.idle_timeout:",
		"cas[0].id:", "cas[0].create.key_type:", "cas[1].create.parent:", "cas[1].create.subject:",
		"cas[2].create: exactly one", "cas[3].import:",
		"profiles[0].ca: no CA \"unknown\"", "profiles[0].challenge: a static challenge needs",
		"profiles[1].id: \"a\" is declared twice", "profiles[1].ra_key_type:", "profiles[1].challenge.mode:",
		"profiles[2].challenge: a dynamic challenge takes no password", "profiles[2].challenge.ttl:",
		"profiles[2].policy.validity:", "profiles[2].policy.ext_key_usage:", "profiles[2].expiry_notices[0]:",
		"events.expiry_scan:", "events.sinks[0].name:", "events.sinks[0].url:", "events.sinks[0].secret_env: required",
		"events.sinks[0].events[0]: \"certificate.exploded\"", "events.sinks[1]: url, secret_env, username and password_env",
		"events.sinks[2].name: \"log\" is declared twice", "events.sinks[2].type:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestValidateRenewalBoundary(t *testing.T) {
	const head = `
cas: [{id: one, create: {subject: "CN=x"}}]
profiles:
  - {id: alpha, ca: one, challenge: {password_env: X}}
`
	for _, tt := range []struct {
		name, profile, want string
	}{
		{"from_profiles naming a declared profile", `{id: beta, ca: one, challenge: {password_env: X}, renewal: {from_profiles: [alpha]}}`, ""},
		{"from_profiles naming an undeclared profile", `{id: beta, ca: one, challenge: {password_env: X}, renewal: {from_profiles: [gamma]}}`,
			`profiles[1].renewal.from_profiles[0]: no profile "gamma" is declared`},
		{"from_profiles naming itself", `{id: beta, ca: one, challenge: {password_env: X}, renewal: {from_profiles: [beta]}}`,
			`profiles[1].renewal.from_profiles[0]: "beta" is this profile`},
		{"from_profiles with a malformed id", `{id: beta, ca: one, challenge: {password_env: X}, renewal: {from_profiles: [Alpha]}}`,
			`profiles[1].renewal.from_profiles[0]: "Alpha" must be`},
		{"renewal approval manual on a manual profile", `{id: beta, ca: one, approval: manual, challenge: {password_env: X}, renewal: {approval: manual}}`, ""},
		{"renewal approval auto on a manual profile", `{id: beta, ca: one, approval: manual, challenge: {password_env: X}, renewal: {approval: auto}}`, ""},
		{"renewal approval manual on an auto profile", `{id: beta, ca: one, challenge: {password_env: X}, renewal: {approval: manual}}`,
			"profiles[1].renewal.approval: manual applies to profiles with approval: manual"},
		{"renewal approval unknown", `{id: beta, ca: one, approval: manual, challenge: {password_env: X}, renewal: {approval: sometimes}}`,
			`profiles[1].renewal.approval: "sometimes": want auto or manual`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(head + "  - " + tt.profile + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			err = f.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestUpstreamValidation(t *testing.T) {
	const fp = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	for _, tc := range []struct {
		doc  string
		want string // "" means valid
	}{
		{`profiles: [{id: a, upstream: {scep: {url: "https://ndes.example/certsrv/mscep/mscep.dll", ca_fingerprint: "` + fp + `"}}, challenge: {mode: dynamic}}]`, ""},
		{`profiles: [{id: a, upstream: {scep: {url: "http://127.0.0.1:8080/scep"}}, challenge: {mode: dynamic}}]`, ""},
		{`profiles: [{id: a, ca: root, upstream: {scep: {url: "http://127.0.0.1:8080/scep"}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream: ca and upstream are exclusive"},
		{`profiles: [{id: a, challenge: {mode: dynamic}}]`, "profiles[0].ca: required (or upstream)"},
		{`profiles: [{id: a, upstream: {scep: {url: "https://ndes.example/scep"}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.ca_fingerprint: required"},
		{`profiles: [{id: a, upstream: {scep: {url: "https://ndes.example/scep", ca_fingerprint: "md5:00"}}, challenge: {mode: dynamic}}]`, "want sha256:<hex>"},
		{`profiles: [{id: a, upstream: {scep: {url: "ftp://x/scep"}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.url"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", challenge_env: A}}, challenge: {mode: dynamic}}]`, "PARSE"},
		{`profiles: [{id: a, upstream: {}, challenge: {mode: dynamic}}]`, "scep is required"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", timeout: 1m}}, challenge: {mode: dynamic}}]`, "between 1s and 25s"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", when_unavailable: pending}}, challenge: {mode: dynamic}}]`, ""},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", max_in_flight: 2000}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.max_in_flight"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", when_unavailable: retry}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.when_unavailable"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ndes: {url: "http://localhost/certsrv/mscep_admin/", username: u, password_env: P}}}, challenge: {mode: dynamic}}]`, ""},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ndes: {url: "http://localhost/m", username: u}}}, challenge: {mode: dynamic}}]`, "a username needs password_env"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ndes: {url: "http://localhost/m"}}}, challenge: {password_env: X}}]`, "needs challenge mode dynamic"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s"}}, ca_mode: true, challenge: {mode: dynamic}}]`, "profiles[0].ca_mode"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s"}}, renewal: {revoke_old: true}, challenge: {mode: dynamic}}]`, "profiles[0].renewal.revoke_old"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", when_unavailable: pending}}, challenge: {mode: intune, intune: {tenant: t, client_id: c, client_secret_env: S}}}]`, "profiles[0].upstream.scep.when_unavailable: Intune has no pending state"},
		{"cas: [{id: a-ra, create: {subject: CN=x}}]\nprofiles: [{id: a, upstream: {scep: {url: \"http://localhost/s\"}}, challenge: {mode: dynamic}}]", "is taken by cas"},
		{"profiles: [{id: a, upstream: {scep: {url: \"http://localhost/s\"}}, challenge: {mode: dynamic}}, {id: b, ca: a-ra, challenge: {mode: dynamic}}]", "profiles[1].ca: CA \"a-ra\" is the RA issuer of profile a"},
		{"profiles: [{id: a, upstream: {scep: {url: \"http://localhost/s\"}}, challenge: {mode: dynamic}}, {id: b, ca: root, rollover: {next_ca: a-ra, at: \"2030-01-01T00:00:00Z\"}, challenge: {mode: dynamic}}]", "profiles[1].rollover.next_ca: CA \"a-ra\" is the RA issuer of profile a"},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ra: {cert: ra.pem, key: ra.key}, ndes: {url: "http://localhost/m"}}}, challenge: {mode: dynamic}}]`, ""},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ra: {cert: ra.pem}}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.ra: cert and key (PEM files) are both required"},
		{`profiles: [{id: a, ca: root, challenge: {mode: ra, trusted_ra: {ca_file: ra-ca.pem}}}]`, ""},
		{`profiles: [{id: a, ca: root, challenge: {mode: ra}}]`, "profiles[0].challenge.trusted_ra: ca_file"},
		{`profiles: [{id: a, ca: root, challenge: {mode: ra, password_env: X, trusted_ra: {ca_file: c.pem}}}]`, "mode ra takes no password"},
		{`profiles: [{id: a, ca: root, challenge: {mode: dynamic, trusted_ra: {ca_file: c.pem}}}]`, "profiles[0].challenge.trusted_ra: applies to mode ra only"},
		// Credentials in a URL would be logged and stored; the error shows
		// the URL without them.
		{`profiles: [{id: a, upstream: {scep: {url: "http://svc:S3CRET@localhost/s"}}, challenge: {mode: dynamic}}]`, `profiles[0].upstream.scep.url: "http://redacted@localhost/…": no credentials in the URL`},
		{`profiles: [{id: a, upstream: {scep: {url: "http://localhost/s", ndes: {url: "http://u:S3CRET@localhost/m"}}}, challenge: {mode: dynamic}}]`, "profiles[0].upstream.scep.ndes.url: \"http://redacted@localhost/…\": no credentials in the URL, it is logged and stored (use username and password_env)"},
		{`profiles: [{id: a, ca: root, challenge: {mode: webhook, webhook: {url: "https://u:S3CRET@hooks.example/v", secret_env: K}}}]`, "profiles[0].challenge.webhook.url"},
		{`profiles: [{id: a, ca: root, challenge: {mode: webhook, webhook: {url: "https://hooks.example/v?code=KEY", secret_env: K}}}]`, ""},
		{`profiles: [{id: a, ca: root, challenge: {mode: webhook, webhook: {url: "httpx://hooks.example/v", secret_env: K}}}]`, "want an http:// or https:// URL"},
		{`profiles: [{id: a, ca: root, challenge: {mode: intune, intune: {tenant: t, client_id: c, client_secret_env: S, login_url: "https://u:S3CRET@login.example"}}}]`, "profiles[0].challenge.intune.login_url"},
		{"events: {sinks: [{name: siem, type: webhook, url: \"https://u:S3CRET@siem.example/in\", secret_env: K}]}", "events.sinks[0].url"},
		{"events: {sinks: [{name: siem, type: webhook, url: \"https://siem.example/in\", secret_env: K, username: scepd, password_env: SIEM_PASSWORD}]}", ""},
		{"events: {sinks: [{name: siem, type: webhook, url: \"https://siem.example/in\", secret_env: K, username: scepd}]}", "events.sinks[0]: username and password_env go together"},
	} {
		f, err := Parse([]byte(tc.doc))
		if tc.want == "PARSE" {
			if err == nil {
				t.Errorf("%s: parsed; an upstream challenge cannot be delivered and is no key", tc.doc)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%s): %v", tc.doc, err)
		}
		err = f.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to contain %q", tc.doc, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "S3CRET"):
			t.Errorf("%s: the error %v shows the password", tc.doc, err)
		}
	}
	if b, err := ParseFingerprint("SHA256:" + strings.ToUpper(fp[7:])); err != nil || len(b) != 32 {
		t.Errorf("ParseFingerprint upper case: %x, %v", b, err)
	}
}

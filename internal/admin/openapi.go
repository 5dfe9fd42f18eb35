package admin

import (
	"encoding/json"
	"regexp"
	"strings"
)

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// schemas describes the named bodies of the route table, briefly: the
// field lists are the JSON of the Go types in this package and in config.
var schemas = map[string]map[string]any{
	"CA":                   {"type": "object", "description": "A CA: id, subject, issuer, serial, key_type, not_before, not_after, root, chain_length, sha256, ca_mode_capable."},
	"CAList":               {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/CA"}},
	"CASpec":               {"type": "object", "description": "{id, create: {parent, key_type, subject, validity, allow_ca_mode}} or {id, import: {cert (PEM chain), key (PEM)}}, as in the config file's cas entries."},
	"Profile":              {"type": "object", "description": "A profile: id, ca, path, source, challenge_mode, ca_mode, include_ca_cert, full_chain, allow_des, ra_subject, ra_sha256, policy, lifecycle, created, updated; in RA mode upstream_ca_chain (base64 DER, the pinned upstream CA first: what devices' certificates chain to; ca is then the RA issuer, which issues nothing to devices)."},
	"ProfileList":          {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Profile"}},
	"ProfileSpec":          {"type": "object", "description": "A profile as in the config file's profiles entries; a static challenge takes challenge.password (hashed at once, never returned); every *_env field (webhook.secret_env, intune.client_secret_env, upstream.scep.ndes.password_env, ...) names only variables starting with SCEPD_SECRET_."},
	"PolicyResult":         {"type": "object", "description": "allowed, reason, certificate (PEM, signed by a throw-away key), subject, sans, not_after."},
	"CSR":                  {"type": "string", "description": "A PKCS#10 request, PEM or DER."},
	"Challenge":            {"type": "object", "description": "challenge, expires_at."},
	"Certificate":          {"type": "object", "description": "serial, profile, transaction_id, subject, sans, not_before, not_after, status, created; once revoked revoked_at and revocation_reason (the RFC 5280 name, e.g. keyCompromise)."},
	"Request":              {"type": "object", "description": "profile, transaction_id, status, subject, sans, key_type, extensions, created, expires; while pending waits_for (approval, or upstream: the profile's upstream CA, which the device's polls ask); once decided decided_by, reason, serial; requested_by; shown alone also csr (base64 DER) and, while pending, preview (what approving would issue: allowed, reason, subject, sans, not_after, certificate)."},
	"PendingChallenge":     {"type": "object", "description": "id (SHA-256 of the secret, hex), profile, bound_to, created, expires, by, held_by; never the secret."},
	"PendingChallengeList": {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/PendingChallenge"}},
	"Count":                {"type": "object", "description": "count: the number of rows."},
	"CertificateList":      {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Certificate"}},
	"RotateRequest":        {"type": "object", "description": "password (generated and returned once when empty), overlap (Go duration the old one stays valid)."},
	"EntityRequest":        {"type": "object", "description": "code (generated and returned once when empty), uses (default 1), ttl (default 168h)."},
	"Entity":               {"type": "object", "description": "profile, username, code (only when generated), uses_left, expires."},
	"EntityList":           {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Entity"}},
	"RevokeRequest":        {"type": "object", "description": "reason (an RFC 5280 CRLReason name: keyCompromise, superseded, cessationOfOperation, ...), and subject for revoke-subject."},
	"RejectRequest":        {"type": "object", "description": "reason."},
	"RequestList":          {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Request"}},
	"Token":                {"type": "object", "description": "id, name, role, profiles, created, revoked."},
	"TokenList":            {"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Token"}},
	"TokenRequest":         {"type": "object", "description": "name, role (admin, operator, mdm, auditor), profiles."},
	"NewToken":             {"type": "object", "description": "A Token plus token, the secret, shown only here."},
	"AuditList":            {"type": "array", "items": map[string]any{"type": "object", "description": "Seq, Time, Actor, Action, Object, Outcome, Details, PrevHash, Hash."}},
	"Error":                {"type": "object", "description": `{"error": {"code": "not_found", "message": "..."}}; codes: bad_request, unauthorized, forbidden, not_found, conflict, managed_by_config, limit, unavailable, internal.`},
}

// plainAnswers are routes that also answer text/plain, with 200, when the
// request says Accept: text/plain (MDM scripts that want the bare value).
var plainAnswers = map[string]string{
	"POST /api/v1/profiles/{id}/challenges": "the challenge alone (Accept: text/plain)",
}

// queryParams describe query parameters beyond a plain string, by
// "METHOD path name".
var queryParams = map[string]map[string]any{
	"GET /api/v1/certificates limit": {"description": "rows per page; a larger limit is an error (400), not cut short: follow the cursor for more",
		"schema": map[string]any{"type": "integer", "minimum": 1, "maximum": MaxListLimit, "default": DefaultListLimit}},
	"GET /api/v1/certificates cursor": {"description": "the " + NextCursorHeader + " header of the previous page (opaque); repeat the other parameters unchanged",
		"schema": map[string]any{"type": "string"}},
	"GET /api/v1/certificates offset": {"description": "rows to skip (deprecated for large listings: use cursor; not together with it)",
		"schema": map[string]any{"type": "integer", "minimum": 0}},
}

// responseHeaders are the headers of a route's success answer.
var responseHeaders = map[string]map[string]any{
	"GET /api/v1/certificates": {NextCursorHeader: map[string]any{"description": "present when more rows may follow: the cursor of the next page",
		"schema": map[string]any{"type": "string"}}},
}

// OpenAPI returns the OpenAPI 3.0 document of the route table.
func OpenAPI() []byte {
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		op := map[string]any{"summary": rt.summary, "security": []any{map[string]any{"bearer": []any{}}}}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.query {
			p := map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}}
			for k, v := range queryParams[rt.method+" "+rt.path+" "+q] {
				p[k] = v
			}
			params = append(params, p)
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != "" {
			ct := "application/json"
			if rt.body == "CSR" {
				ct = "application/pkcs10"
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{ct: map[string]any{"schema": ref(rt.body)}}}
		}
		status, content := "200", map[string]any{"application/json": map[string]any{"schema": ref(rt.response)}}
		switch {
		case rt.method == "POST" && rt.response != "PolicyResult" && rt.response != "Profile" && rt.response != "Certificate" &&
			rt.response != "CertificateList" && rt.response != "" && !strings.HasSuffix(rt.path, "/rotate"):
			status = "201"
		case rt.response == "":
			status, content = "204", nil
		case rt.response == "binary":
			content = map[string]any{"application/x-pem-file": map[string]any{}, "application/pkix-cert": map[string]any{}}
		}
		ok := map[string]any{"description": "success"}
		if h, found := responseHeaders[rt.method+" "+rt.path]; found {
			ok["headers"] = h
		}
		if content != nil {
			ok["content"] = content
		}
		errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
		responses := map[string]any{status: ok, "400": errResp, "401": errResp, "403": errResp, "404": errResp}
		if desc, ok := plainAnswers[rt.method+" "+rt.path]; ok {
			responses["200"] = map[string]any{"description": desc, "content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}
		}
		op["responses"] = responses
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "scepd admin API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "An API token from `scepd token create`."}},
		},
	}
	b, _ := json.MarshalIndent(doc, "", "  ") // maps of plain values always marshal
	return b
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
